// Command controller is cert-manager's controller: the Certificate, CertificateRequest, Issuer and
// ClusterIssuer control loops (and ACME's), from the root module's controller packages. This main only
// builds their shared context from flags, takes the leader election Lease and starts the enabled loops.
//
// Flags: the ones the release manifest (the Helm chart's templates) can pass, plus those a run outside the
// cluster needs; each fills upstream's ControllerConfiguration, with upstream's defaults, so it means what
// it means upstream. Not offered: --config, the metrics TLS flags, profiling, the Gateway API shim flags,
// the ACME HTTP-01 solver resource and ambient-credential flags. An unknown flag is an error, never ignored.
package main

import (
	"context"
	"strings"

	"github.com/spf13/pflag"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	cliflag "k8s.io/component-base/cli/flag"

	"github.com/cert-manager/cert-manager/incluster-ipam-binaries/cli"
	config "github.com/cert-manager/cert-manager/internal/apis/config/controller"
	configscheme "github.com/cert-manager/cert-manager/internal/apis/config/controller/scheme"
	"github.com/cert-manager/cert-manager/internal/apis/config/controller/validation"
	configv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/controller/v1alpha1"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"

	// The issuer types; each registers itself with the Issuer and CertificateRequest controllers. The
	// control loops themselves register through the configuration's defaults, which import them all.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/venafi"
)

func main() {
	cfg := defaultConfig()
	cli.Main(cli.Command{
		Name:         "controller",
		Summary:      "issues and renews cert-manager Certificates",
		Flags:        flags(cfg),
		Logging:      &cfg.Logging,
		FeatureGates: &cfg.FeatureGates,
		Validate:     func() error { return validation.ValidateControllerConfiguration(cfg, nil).ToAggregate() },
		Run:          func(ctx context.Context) error { return run(ctx, cfg) },
	})
}

// defaultConfig is upstream's default configuration: the v1alpha1 defaults converted to the internal type.
func defaultConfig() *config.ControllerConfiguration {
	scheme, _, err := configscheme.NewSchemeAndCodecs()
	utilruntime.Must(err)
	versioned := &configv1alpha1.ControllerConfiguration{}
	scheme.Default(versioned)
	cfg := &config.ControllerConfiguration{}
	utilruntime.Must(scheme.Convert(versioned, cfg, nil))
	return cfg
}

func flags(c *config.ControllerConfiguration) *pflag.FlagSet {
	fs := cli.NewFlagSet("controller")
	fs.StringVar(&c.KubeConfig, "kubeconfig", c.KubeConfig, "kubeconfig file; in-cluster config if empty")
	fs.StringVar(&c.APIServerHost, "master", c.APIServerHost, "API server address, overriding the kubeconfig's")
	fs.Float32Var(&c.KubernetesAPIQPS, "kube-api-qps", c.KubernetesAPIQPS, "client queries per second")
	fs.IntVar(&c.KubernetesAPIBurst, "kube-api-burst", c.KubernetesAPIBurst, "client burst")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace,
		"watch only this namespace (disables ClusterIssuers); all namespaces if empty")
	fs.StringVar(&c.ClusterResourceNamespace, "cluster-resource-namespace", c.ClusterResourceNamespace,
		"namespace of the Secrets ClusterIssuers refer to")
	le := &c.LeaderElectionConfig
	fs.BoolVar(&le.Enabled, "leader-elect", le.Enabled, "run the loops only while holding the leader election Lease")
	fs.StringVar(&le.Namespace, "leader-election-namespace", le.Namespace, "namespace of the leader election Lease")
	fs.DurationVar(&le.LeaseDuration, "leader-election-lease-duration", le.LeaseDuration, "Lease duration")
	fs.DurationVar(&le.RenewDeadline, "leader-election-renew-deadline", le.RenewDeadline, "Lease renew deadline")
	fs.DurationVar(&le.RetryPeriod, "leader-election-retry-period", le.RetryPeriod, "Lease retry period")
	fs.StringSliceVar(&c.Controllers, "controllers", c.Controllers,
		"controllers to run: '*' for the default set, 'name' to add one, '-name' to drop one")
	fs.IntVar(&c.NumberOfConcurrentWorkers, "concurrent-workers", c.NumberOfConcurrentWorkers, "workers per controller")
	fs.BoolVar(&c.EnableCertificateOwnerRef, "enable-certificate-owner-ref", c.EnableCertificateOwnerRef,
		"make each Certificate the owner of its Secret (deleted with it)")
	shim := &c.IngressShimConfig
	fs.StringVar(&shim.DefaultIssuerName, "default-issuer-name", shim.DefaultIssuerName, "ingress-shim's default issuer name")
	fs.StringVar(&shim.DefaultIssuerKind, "default-issuer-kind", shim.DefaultIssuerKind, "ingress-shim's default issuer kind")
	fs.StringVar(&shim.DefaultIssuerGroup, "default-issuer-group", shim.DefaultIssuerGroup, "ingress-shim's default issuer group")
	http01 := &c.ACMEHTTP01Config
	fs.StringVar(&http01.SolverImage, "acme-http01-solver-image", http01.SolverImage, "image of ACME HTTP-01 solver pods")
	fs.Var(cliflag.NewMapStringString(&http01.SolverExtraLabels), "acme-http01-solver-extra-labels",
		"key=value labels added to ACME HTTP-01 solver resources")
	fs.StringVar(&http01.SolverRuntimeClassName, "acme-http01-solver-runtime-class-name", http01.SolverRuntimeClassName,
		"RuntimeClass of ACME HTTP-01 solver pods")
	fs.IntVar(&c.MaxConcurrentChallenges, "max-concurrent-challenges", c.MaxConcurrentChallenges,
		"most ACME challenges processed at once")
	dns01 := &c.ACMEDNS01Config
	fs.StringSliceVar(&dns01.RecursiveNameservers, "dns01-recursive-nameservers", dns01.RecursiveNameservers,
		"resolvers (host:port or DoH https:// URLs) for ACME DNS-01 self checks")
	fs.BoolVar(&dns01.RecursiveNameserversOnly, "dns01-recursive-nameservers-only", dns01.RecursiveNameserversOnly,
		"query only those resolvers, never the authoritative servers")
	fs.StringVar(&c.MetricsListenAddress, "metrics-listen-address", c.MetricsListenAddress,
		"address of the plain-HTTP Prometheus endpoint")
	fs.StringVar(&c.HealthzListenAddress, "internal-healthz-listen-address", c.HealthzListenAddress,
		"address of the /livez endpoint (the liveness probe's)")
	fs.DurationVar(&le.HealthzTimeout, "internal-healthz-leader-election-timeout", le.HealthzTimeout,
		"how long after a missed Lease renewal /livez still reports healthy")
	utilruntime.Must(fs.MarkHidden("internal-healthz-listen-address")) // hidden upstream too
	utilruntime.Must(fs.MarkHidden("internal-healthz-leader-election-timeout"))
	fs.Var(cliflag.NewMapStringBool(&c.FeatureGates), "feature-gates", "key=value pairs of feature gates:\n"+
		strings.Join(utilfeature.DefaultFeatureGate.KnownFeatures(), "\n"))
	logf.AddFlags(&c.Logging, fs)
	return fs
}
