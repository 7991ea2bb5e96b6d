// Package util has the issuer hint cert-manager sets (inert, see the module's go.mod).
package util

// IssuerHint names which issuers a request may go to.
type IssuerHint string

// IssuerHintAllIssuers lets any issuer take the request.
const IssuerHintAllIssuers IssuerHint = ""
