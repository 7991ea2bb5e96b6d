// Package certificate has the request types cert-manager fills (inert, see the module's go.mod).
package certificate

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"time"

	"github.com/Venafi/vcert/v5/pkg/util"
)

// CustomFieldType tells the kind of a custom field.
type CustomFieldType int

// The custom field kinds cert-manager sends.
const (
	CustomFieldPlain CustomFieldType = iota
	CustomFieldOrigin
)

// CustomField is one name/value pair sent with a request.
type CustomField struct {
	Type        CustomFieldType
	Name, Value string
}

// CSrOriginOption tells who made the CSR.
type CSrOriginOption int

// UserProvidedCSR: the caller supplies the CSR.
const UserProvidedCSR CSrOriginOption = 2

// ChainOption orders the returned chain.
type ChainOption int

// ChainOptionRootLast puts the root certificate last.
const ChainOptionRootLast ChainOption = 1

// Request is a certificate request as cert-manager builds it.
type Request struct {
	Subject          pkix.Name
	ValidityDuration *time.Duration
	IssuerHint       util.IssuerHint
	ChainOption      ChainOption
	CustomFields     []CustomField
	FriendlyName     string
	CsrOrigin        CSrOriginOption
	PickupID         string
	Timeout          time.Duration
	csr              []byte
}

// NewRequest starts a request from a certificate template.
func NewRequest(cert *x509.Certificate) *Request { return &Request{Subject: cert.Subject} }

// SetCSR keeps the PEM-encoded CSR.
func (r *Request) SetCSR(csr []byte) error {
	r.csr = csr
	return nil
}

// PEMCollection is an issued certificate and its chain.
type PEMCollection struct {
	Certificate string
	PrivateKey  string
	Chain       []string
}
