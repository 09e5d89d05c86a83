// Package k8s holds Brownout's Kubernetes manifests; the test decodes each
// strictly into the k8s.io/api types, so that a misspelt or misplaced
// field fails here rather than being dropped by the API server.
package k8s

import (
	"bytes"
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

type manifests struct {
	deploy  *appsv1.Deployment
	service *corev1.Service
	pdb     *policyv1.PodDisruptionBudget
	hpa     *autoscalingv2.HorizontalPodAutoscaler
}

// decode splits the file into documents and decodes each strictly into
// the type its apiVersion and kind name.
func decode(t *testing.T, data []byte) manifests {
	t.Helper()
	var m manifests
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var into any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			m.deploy = &appsv1.Deployment{}
			into = m.deploy
		case "v1 Service":
			m.service = &corev1.Service{}
			into = m.service
		case "policy/v1 PodDisruptionBudget":
			m.pdb = &policyv1.PodDisruptionBudget{}
			into = m.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
			into = m.hpa
		default:
			t.Fatalf("document %d: unexpected %s %s", i, head.APIVersion, head.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			t.Fatalf("document %d (%s): %v", i, head.Kind, err)
		}
	}
	return m
}

func TestManifests(t *testing.T) {
	data, err := os.ReadFile("brownout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, data)
	if m.deploy == nil || m.service == nil || m.pdb == nil || m.hpa == nil {
		t.Fatalf("want a Deployment, a Service, a PodDisruptionBudget and an HPA, got %+v", m)
	}
	pod := m.deploy.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", p)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container security context %+v: want a read-only root and no privilege escalation", sc)
	}
	if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pod security context %+v: want non-root uid 65532 (the image's user)", psc)
	}
	if c.Resources.Requests.Cpu().IsZero() {
		t.Error("no CPU request: the HPA's utilisation target needs one")
	}
	// The Service and the PDB select the Deployment's pods.
	for name, sel := range map[string]map[string]string{"service": m.service.Spec.Selector, "pdb": m.pdb.Spec.Selector.MatchLabels} {
		for k, v := range sel {
			if pod.Labels[k] != v {
				t.Errorf("%s selects %s=%s, which the pods lack", name, k, v)
			}
		}
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", name)
		}
	}
	port := m.service.Spec.Ports[0].TargetPort.String()
	found := false
	for _, p := range c.Ports {
		found = found || p.Name == port
	}
	if !found {
		t.Errorf("service targets port %q, which the container does not name", port)
	}
	// The HPA scales this Deployment on CPU at 70 %, like the seed.
	if ref := m.hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != m.deploy.Name {
		t.Errorf("HPA scales %s/%s", ref.Kind, ref.Name)
	}
	if len(m.hpa.Spec.Metrics) != 1 || m.hpa.Spec.Metrics[0].Resource == nil || m.hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
		m.hpa.Spec.Metrics[0].Resource.Target.AverageUtilization == nil || *m.hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
		t.Errorf("HPA metrics %+v, want CPU utilisation 70", m.hpa.Spec.Metrics)
	}
	if m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas != 2 || m.hpa.Spec.MaxReplicas != 10 {
		t.Errorf("HPA replicas %v..%d, want 2..10", m.hpa.Spec.MinReplicas, m.hpa.Spec.MaxReplicas)
	}
	// At the HPA's minimum the budget must still allow one eviction, or
	// node drains hang.
	if mu := m.pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() < 1 {
		if mins := m.pdb.Spec.MinAvailable; mins == nil || mins.IntValue() >= int(*m.hpa.Spec.MinReplicas) {
			t.Errorf("PDB (maxUnavailable %v, minAvailable %v) blocks every eviction at %d replicas", mu, mins, *m.hpa.Spec.MinReplicas)
		}
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 15 {
		t.Errorf("termination grace %v s is not above drain (5 s) + shutdown timeout (10 s)", g)
	}
}

// TestStrictDecodingRefusesUnknownFields shows the decoder can fail.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	doc := []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  selektor: {app: x}\n")
	if err := yaml.UnmarshalStrict(doc, &corev1.Service{}); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}
