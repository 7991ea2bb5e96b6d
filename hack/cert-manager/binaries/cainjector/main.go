// Command cainjector is cert-manager's CA injector: it copies the CA of the Certificate or Secret named by
// the cert-manager.io/inject-ca-from(-secret) annotation (or the API server's own CA for inject-apiserver-ca)
// into annotated webhook configurations, CRDs (conversion webhooks) and APIServices. The injectors are the
// root module's (pkg/controller/cainjector); this main builds their controller-runtime manager with the
// flags the release manifest passes (and the few a host run needs), meaning what they mean upstream.
// Not offered: --config, the metrics TLS flags and profiling (the manifest sets none of them).
package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	cliflag "k8s.io/component-base/cli/flag"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cert-manager/cert-manager/incluster-ipam-binaries/cli"
	config "github.com/cert-manager/cert-manager/internal/apis/config/cainjector"
	configscheme "github.com/cert-manager/cert-manager/internal/apis/config/cainjector/scheme"
	"github.com/cert-manager/cert-manager/internal/apis/config/cainjector/validation"
	configv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/cainjector/v1alpha1"
	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
)

func main() {
	cfg := defaultConfig()
	ctrl.SetLogger(logf.Log) // the injectors log through controller-runtime
	cli.Main(cli.Command{
		Name:         "cainjector",
		Summary:      "injects CA bundles into webhook configurations, CRDs and APIServices",
		Flags:        flags(cfg),
		Logging:      &cfg.Logging,
		FeatureGates: &cfg.FeatureGates,
		Validate:     func() error { return validation.ValidateCAInjectorConfiguration(cfg, nil).ToAggregate() },
		Run:          func(ctx context.Context) error { return run(ctx, cfg) },
	})
}

// defaultConfig is upstream's default configuration: the v1alpha1 defaults converted to the internal type.
func defaultConfig() *config.CAInjectorConfiguration {
	scheme, _, err := configscheme.NewSchemeAndCodecs()
	utilruntime.Must(err)
	versioned := &configv1alpha1.CAInjectorConfiguration{}
	scheme.Default(versioned)
	cfg := &config.CAInjectorConfiguration{}
	utilruntime.Must(scheme.Convert(versioned, cfg, nil))
	return cfg
}

func flags(c *config.CAInjectorConfiguration) *pflag.FlagSet {
	fs := cli.NewFlagSet("cainjector")
	fs.StringVar(&c.KubeConfig, "kubeconfig", c.KubeConfig, "kubeconfig file; in-cluster config if empty")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "only inject into, and read sources from, this namespace")
	fs.StringSliceVar(&c.IgnoreNamespaces, "ignore-namespaces", c.IgnoreNamespaces,
		"namespaces whose Secrets are never used as CA sources")
	le := &c.LeaderElectionConfig
	fs.BoolVar(&le.Enabled, "leader-elect", le.Enabled, "run only while holding the leader election Lease")
	fs.StringVar(&le.Namespace, "leader-election-namespace", le.Namespace, "namespace of the leader election Lease")
	fs.DurationVar(&le.LeaseDuration, "leader-election-lease-duration", le.LeaseDuration, "Lease duration")
	fs.DurationVar(&le.RenewDeadline, "leader-election-renew-deadline", le.RenewDeadline, "Lease renew deadline")
	fs.DurationVar(&le.RetryPeriod, "leader-election-retry-period", le.RetryPeriod, "Lease retry period")
	fs.BoolVar(&c.EnableDataSourceConfig.Certificates, "enable-certificates-data-source",
		c.EnableDataSourceConfig.Certificates, "accept Certificates as CA sources (needs the Certificate CRD)")
	inj := &c.EnableInjectableConfig
	fs.BoolVar(&inj.ValidatingWebhookConfigurations, "enable-validatingwebhookconfigurations-injectable",
		inj.ValidatingWebhookConfigurations, "inject into annotated ValidatingWebhookConfigurations")
	fs.BoolVar(&inj.MutatingWebhookConfigurations, "enable-mutatingwebhookconfigurations-injectable",
		inj.MutatingWebhookConfigurations, "inject into annotated MutatingWebhookConfigurations")
	fs.BoolVar(&inj.CustomResourceDefinitions, "enable-customresourcedefinitions-injectable",
		inj.CustomResourceDefinitions, "inject into annotated CustomResourceDefinitions (conversion)")
	fs.BoolVar(&inj.APIServices, "enable-apiservices-injectable", inj.APIServices,
		"inject into annotated APIServices")
	fs.StringVar(&c.MetricsListenAddress, "metrics-listen-address", c.MetricsListenAddress,
		"address of the plain-HTTP metrics endpoint; 0 disables it")
	fs.Var(cliflag.NewMapStringBool(&c.FeatureGates), "feature-gates", "key=value pairs of feature gates:\n"+
		strings.Join(utilfeature.DefaultFeatureGate.KnownFeatures(), "\n"))
	logf.AddFlags(&c.Logging, fs)
	return fs
}

func run(ctx context.Context, c *config.CAInjectorConfiguration) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", c.KubeConfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	restConfig = util.RestConfigWithUserAgent(restConfig, "cainjector")

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))

	var namespaces map[string]cache.Config
	if c.Namespace != "" {
		namespaces = map[string]cache.Config{c.Namespace: {}}
	}
	le := c.LeaderElectionConfig
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true, DefaultNamespaces: namespaces},
		// Secrets are read directly, never cached: a cluster may hold many large ones (as upstream).
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		LeaderElection:                le.Enabled,
		LeaderElectionNamespace:       le.Namespace,
		LeaderElectionID:              "cert-manager-cainjector-leader-election", // upstream's Lease name
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionLabels:          map[string]string{"app.kubernetes.io/managed-by": "cert-manager-cainjector"},
		LeaderElectionResourceLock:    resourcelock.LeasesResourceLock,
		LeaseDuration:                 &le.LeaseDuration,
		RenewDeadline:                 &le.RenewDeadline,
		RetryPeriod:                   &le.RetryPeriod,
		Metrics:                       metricsserver.Options{BindAddress: c.MetricsListenAddress},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if c.EnableDataSourceConfig.Certificates {
		if err := waitForCertificateCRD(ctx, mgr); err != nil {
			return err
		}
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		Namespace:                    c.Namespace,
		IgnoreNamespaces:             c.IgnoreNamespaces,
		EnableCertificatesDataSource: c.EnableDataSourceConfig.Certificates,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   c.EnableInjectableConfig.MutatingWebhookConfigurations,
			cainjector.ValidatingWebhookConfigurationName: c.EnableInjectableConfig.ValidatingWebhookConfigurations,
			cainjector.APIServiceName:                     c.EnableInjectableConfig.APIServices,
			cainjector.CustomResourceDefinitionName:       c.EnableInjectableConfig.CustomResourceDefinitions,
		},
	}); err != nil {
		return fmt.Errorf("injectors: %w", err)
	}
	return mgr.Start(ctx)
}

// waitForCertificateCRD waits (up to 5 minutes, as upstream) for the Certificate CRD: the Certificate
// data source watches Certificates, and the manager would fail on a missing kind.
func waitForCertificateCRD(ctx context.Context, mgr ctrl.Manager) error {
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	log := logf.FromContext(ctx)
	name := types.NamespacedName{Name: "certificates.cert-manager.io"}
	return wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := direct.Get(ctx, name, &apiext.CustomResourceDefinition{})
		if apierrors.IsNotFound(err) {
			log.Info("waiting for the certificates.cert-manager.io CRD")
			return false, nil
		}
		return err == nil, err
	})
}
