"""What the provider's servers share: TLS contexts that can be swapped while serving (`tls`), the watcher
that reloads certificates from disk (`certwatch`), and the secure metrics server with Kubernetes
authentication and authorization (`diagnostics`)."""
