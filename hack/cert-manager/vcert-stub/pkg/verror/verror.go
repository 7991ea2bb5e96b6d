// Package verror has the error cert-manager treats as a network failure (inert, see the module's go.mod).
package verror

import "errors"

// ServerUnavailableError says the Venafi server could not be reached.
var ServerUnavailableError = errors.New("venafi server unavailable")
