// Pins the modules whose CRD manifests the e2e cluster installs (read from the module cache).
// gateway-api v1.5.1 is what llm-d v0.6's prereqs install (GATEWAY_API_CRD_REVISION).
module llmd.local/e2e/crds

go 1.24.0

require (
	sigs.k8s.io/gateway-api v1.5.1
	sigs.k8s.io/gateway-api-inference-extension v1.4.0
)
