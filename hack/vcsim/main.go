// Command vcsim runs govmomi's vCenter simulator on loopback for the vSphere e2e tests, and reads VMs'
// extraConfig back through the vSphere API so the tests need no Python vSphere client.
//
//	vcsim serve --listen 127.0.0.1:0 --out info.json   # runs until SIGTERM/SIGINT
//	vcsim extraconfig --info info.json                 # {"<vm name>": {"<key>": "<value>", ...}, ...}
//
// serve writes info.json once the server listens: {"url", "host", "username", "password", "thumbprint"}.
// The TLS certificate is generated at start (ECDSA, self-signed, for 127.0.0.1); clients pin it by its SHA-1
// thumbprint, as CAPV's VSphereCluster.spec.thumbprint does.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator" // the REST (vAPI) endpoints CAPV uses for tags
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
)

// Info is what serve writes for its clients.
type Info struct {
	URL        string `json:"url"`
	Host       string `json:"host"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	Thumbprint string `json:"thumbprint"`
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: vcsim serve|extraconfig [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "extraconfig":
		err = extraConfig(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q (serve, extraconfig)", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vcsim:", err)
	os.Exit(1)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	out := fs.String("out", "", "file to write the connection info to (JSON)")
	username := fs.String("username", "capv", "user name the simulator accepts")
	password := fs.String("password", "capv-simulator", "password the simulator accepts")
	_ = fs.Parse(args)
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	cert, err := selfSigned(host)
	if err != nil {
		return err
	}

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		return fmt.Errorf("creating the inventory: %w", err)
	}
	defer model.Remove()
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	model.Service.RegisterEndpoints = true
	server := model.Service.NewServer()
	defer server.Close()

	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	info := Info{
		URL:        server.URL.String(),
		Host:       server.URL.Host,
		Username:   *username,
		Password:   *password,
		Thumbprint: soap.ThumbprintSHA1(leaf),
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil { // readers see the whole file or none
		return err
	}
	fmt.Fprintf(os.Stderr, "vcsim: serving %s\n", server.URL.Host)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	return nil
}

// selfSigned makes a fresh serving certificate for host (an IP address or a name).
func selfSigned(host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "vcsim"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		template.IPAddresses = []net.IP{ip}
	} else {
		template.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// extraConfig prints every VM's extraConfig as JSON, keyed by VM name.
func extraConfig(args []string) error {
	fs := flag.NewFlagSet("extraconfig", flag.ExitOnError)
	infoFile := fs.String("info", "", "the connection info written by serve")
	prefix := fs.String("prefix", "guestinfo.", "only keys starting with this prefix")
	timeout := fs.Duration("timeout", 20*time.Second, "give up after this long")
	_ = fs.Parse(args)
	data, err := os.ReadFile(*infoFile)
	if err != nil {
		return err
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return fmt.Errorf("%s: %w", *infoFile, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	u, err := soap.ParseURL(info.URL)
	if err != nil {
		return err
	}
	u.User = url.UserPassword(info.Username, info.Password)
	soapClient := soap.NewClient(u, false)
	soapClient.SetThumbprint(u.Host, info.Thumbprint)
	vimClient, err := vim25.NewClient(ctx, soapClient)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", info.Host, err)
	}
	client := &govmomi.Client{Client: vimClient, SessionManager: session.NewManager(vimClient)}
	if err := client.Login(ctx, u.User); err != nil {
		return fmt.Errorf("logging in to %s: %w", info.Host, err)
	}
	defer func() { _ = client.Logout(context.Background()) }()

	manager := view.NewManager(client.Client)
	container, err := manager.CreateContainerView(ctx, client.ServiceContent.RootFolder,
		[]string{"VirtualMachine"}, true)
	if err != nil {
		return err
	}
	defer func() { _ = container.Destroy(context.Background()) }()
	var vms []mo.VirtualMachine
	if err := container.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "config.extraConfig"},
		&vms); err != nil {
		return err
	}
	result := map[string]map[string]string{}
	for _, vm := range vms {
		values := map[string]string{}
		if vm.Config != nil {
			for _, option := range vm.Config.ExtraConfig {
				value := option.GetOptionValue()
				if !strings.HasPrefix(value.Key, *prefix) {
					continue
				}
				values[value.Key] = fmt.Sprint(value.Value)
			}
		}
		result[vm.Name] = values
	}
	return json.NewEncoder(os.Stdout).Encode(result)
}
