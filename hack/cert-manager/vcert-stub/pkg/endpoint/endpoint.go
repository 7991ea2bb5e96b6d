// Package endpoint has the connector types cert-manager compiles against (inert, see the module's go.mod).
package endpoint

import "github.com/Venafi/vcert/v5/pkg/certificate"

// ConnectorType names a Venafi service.
type ConnectorType int

// The services cert-manager tells apart.
const (
	ConnectorTypeUndefined ConnectorType = iota
	ConnectorTypeTPP
	ConnectorTypeCloud
	ConnectorTypeNGTS
)

func (t ConnectorType) String() string {
	return [...]string{"undefined", "TPP", "Cloud", "NGTS"}[t]
}

// Authentication carries the credentials fields cert-manager fills.
type Authentication struct {
	User, Password, APIKey, AccessToken, RefreshToken string
	ClientId, ClientSecret, Scope, TokenURL           string
}

// ZoneConfiguration is a Venafi zone's policy; here it changes and refuses nothing.
type ZoneConfiguration struct{}

// UpdateCertificateRequest leaves the request as it is.
func (*ZoneConfiguration) UpdateCertificateRequest(*certificate.Request) {}

// ValidateCertificateRequest accepts every request.
func (*ZoneConfiguration) ValidateCertificateRequest(*certificate.Request) error { return nil }

// Connector is the part of a Venafi connection cert-manager calls.
type Connector interface {
	GetType() ConnectorType
	Ping() error
	ReadZoneConfiguration() (*ZoneConfiguration, error)
	RequestCertificate(*certificate.Request) (string, error)
	RetrieveCertificate(*certificate.Request) (*certificate.PEMCollection, error)
}

// ErrCertificatePending says a certificate is not issued yet.
type ErrCertificatePending struct{ CertificateID, Status string }

func (e ErrCertificatePending) Error() string {
	return "certificate " + e.CertificateID + " is pending"
}

// ErrRetrieveCertificateTimeout says fetching a certificate timed out.
type ErrRetrieveCertificateTimeout struct{ CertificateID string }

func (e ErrRetrieveCertificateTimeout) Error() string {
	return "timed out retrieving certificate " + e.CertificateID
}
