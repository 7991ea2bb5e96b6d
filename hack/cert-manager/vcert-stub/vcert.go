// Package vcert is an inert stand-in for Venafi's SDK (see go.mod): no Venafi connection can be made.
package vcert

import (
	"errors"
	"net/http"

	"github.com/Venafi/vcert/v5/pkg/endpoint"
)

// ErrUnavailable is what every Venafi call returns in this build.
var ErrUnavailable = errors.New("the Venafi issuer is not available in this build of cert-manager (vcert is stubbed)")

// Config holds the fields cert-manager sets; none is used.
type Config struct {
	ConnectorType   endpoint.ConnectorType
	BaseUrl         string
	Zone            string
	LogVerbose      bool
	ConnectionTrust string
	Credentials     *endpoint.Authentication
	Client          *http.Client
	UserAgent       *string
}

// NewClient always fails.
func NewClient(_ *Config, _ ...bool) (endpoint.Connector, error) { return nil, ErrUnavailable }
