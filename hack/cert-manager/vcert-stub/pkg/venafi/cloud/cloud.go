// Package cloud is an inert connector (see the module's go.mod): every call fails.
package cloud

import (
	"errors"

	"github.com/Venafi/vcert/v5/pkg/certificate"
	"github.com/Venafi/vcert/v5/pkg/endpoint"
)

var errUnavailable = errors.New("the Venafi issuer is not available in this build of cert-manager (vcert is stubbed)")

// Connector never connects.
type Connector struct{}

var _ endpoint.Connector = (*Connector)(nil)

// GetType is never reached: no Connector is ever made.
func (*Connector) GetType() endpoint.ConnectorType { return endpoint.ConnectorTypeUndefined }

// Ping fails.
func (*Connector) Ping() error { return errUnavailable }

// Authenticate fails.
func (*Connector) Authenticate(*endpoint.Authentication) error { return errUnavailable }

// ReadZoneConfiguration fails.
func (*Connector) ReadZoneConfiguration() (*endpoint.ZoneConfiguration, error) {
	return nil, errUnavailable
}

// RequestCertificate fails.
func (*Connector) RequestCertificate(*certificate.Request) (string, error) { return "", errUnavailable }

// RetrieveCertificate fails.
func (*Connector) RetrieveCertificate(*certificate.Request) (*certificate.PEMCollection, error) {
	return nil, errUnavailable
}
