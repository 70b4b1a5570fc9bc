package convert

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeAPIServer answers just enough of the Kubernetes API for `kubectl apply
// --dry-run=client`: discovery of the kinds convert emits, and 404 for every object (so
// each is "created"). It fails the test on any write.
func fakeAPIServer(t *testing.T) *httptest.Server {
	t.Helper()
	res := func(name, kind string, namespaced bool) metav1.APIResource {
		return metav1.APIResource{
			Name: name, SingularName: strings.ToLower(kind), Namespaced: namespaced, Kind: kind,
			Verbs: metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"},
		}
	}
	groups := map[string][]metav1.APIResource{
		"/api/v1": {
			res("configmaps", "ConfigMap", true), res("secrets", "Secret", true),
			res("services", "Service", true), res("persistentvolumeclaims", "PersistentVolumeClaim", true),
			res("serviceaccounts", "ServiceAccount", true), res("namespaces", "Namespace", false),
		},
		"/apis/apps/v1":                      {res("deployments", "Deployment", true), res("statefulsets", "StatefulSet", true)},
		"/apis/batch/v1":                     {res("jobs", "Job", true)},
		"/apis/networking.k8s.io/v1":         {res("networkpolicies", "NetworkPolicy", true)},
		"/apis/rbac.authorization.k8s.io/v1": {res("roles", "Role", true), res("rolebindings", "RoleBinding", true)},
	}
	var list metav1.APIGroupList
	list.Kind, list.APIVersion = "APIGroupList", "v1"
	for _, g := range []string{"apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io"} {
		gv := metav1.GroupVersionForDiscovery{GroupVersion: g + "/v1", Version: "v1"}
		list.Groups = append(list.Groups, metav1.APIGroup{Name: g, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv})
	}
	var mu sync.Mutex
	var writes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet {
			mu.Lock()
			writes = append(writes, r.Method+" "+r.URL.Path)
			mu.Unlock()
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var body any
		switch p := r.URL.Path; {
		case p == "/api":
			body = metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
				ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}}
		case p == "/apis":
			body = list
		case groups[p] != nil:
			gv := strings.TrimPrefix(strings.TrimPrefix(p, "/apis/"), "/api/")
			body = metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv, APIResources: groups[p]}
		default:
			w.WriteHeader(http.StatusNotFound)
			body = metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: "not found"}
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(writes) > 0 {
			t.Errorf("kubectl wrote to the API server in a client dry run: %v", writes)
		}
	})
	return srv
}

// TestKubectlAcceptsOutput feeds every golden project's output as a directory of YAML
// files, and one project's as a JSON List on stdin, through `kubectl apply --dry-run=client
// --validate=false`, against a fake API server on loopback.
func TestKubectlAcceptsOutput(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH; skipping the kubectl apply --dry-run=client check")
	}
	srv := fakeAPIServer(t)
	home := t.TempDir()
	kubeconfig := filepath.Join(home, "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ` + srv.URL + `
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
users:
- name: fake
  user: {}
`
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, stdin []byte, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"apply", "--dry-run=client", "--validate=false"}, args...)...)
		cmd.Env = []string{"KUBECONFIG=" + kubeconfig, "HOME=" + home, "PATH=" + os.Getenv("PATH")}
		if stdin != nil {
			cmd.Stdin = strings.NewReader(string(stdin))
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply: %v\n%s", err, out)
		}
		return string(out)
	}
	count := func(out string) int { return strings.Count(out, "created (dry run)") }

	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Convert(tc.project(), tc.files, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "k8s")
			if err := WriteDir(dir, res.Objects, FormatYAML); err != nil {
				t.Fatal(err)
			}
			if out := run(t, nil, "-f", dir); count(out) != len(res.Objects) {
				t.Errorf("kubectl created %d objects from the directory, want %d:\n%s", count(out), len(res.Objects), out)
			}
			if tc.name != "oneshot" {
				return // the stream path once is enough
			}
			stream, err := Marshal(res.Objects, FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			if out := run(t, stream, "-f", "-"); count(out) != len(res.Objects) {
				t.Errorf("kubectl created %d objects from the JSON list, want %d:\n%s", count(out), len(res.Objects), out)
			}
		})
	}
}
