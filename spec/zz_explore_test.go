package spec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func TestZZExplore(t *testing.T) {
	cases := map[string]string{
		"unknown":  "services:\n  web:\n    image: x\n    restrat: always\n",
		"unknowntop":  "servics:\n  web:\n    image: x\n",
		"unknowndeep":  "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits:\n          memroy: 1g\n",
		"wrongtype": "services:\n  web:\n    image: x\n    ports: 80\n",
		"wrongtype2": "services:\n  web:\n    image: x\n    privileged: maybe\n",
		"syntax":   "services:\n  web:\n    image: x\n   ports: [\n",
		"syntax2":   "services:\n  web:\n\timage: x\n",
		"badport":  "services:\n  web:\n    image: x\n    ports: [\"80:80:80\"]\n",
		"badport2":  "services:\n  web:\n    image: x\n    ports: [\"abc:80\"]\n",
		"badport3":  "services:\n  web:\n    image: x\n    ports: [\"99999:80\"]\n",
		"mem":      "services:\n  web:\n    image: x\n    mem_limit: 12x\n",
		"mem2":      "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits:\n          memory: lots\n",
		"cpu":      "services:\n  web:\n    image: x\n    cpus: fast\n",
		"cpu2":      "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits:\n          cpus: fast\n",
		"required": "services:\n  web:\n    image: ${IMG:?set IMG please}\n",
		"required2": "services:\n  web:\n    image: ${IMG?}\n",
		"badtmpl": "services:\n  web:\n    image: ${IMG\n",
		"depends":  "services:\n  web:\n    image: x\n    depends_on: [dbb]\n  db:\n    image: x\n",
		"noimage":  "services:\n  web:\n    command: x\n",
		"cname":    "services:\n  web:\n    image: x\n    container_name: foo\n    scale: 2\n",
		"cname2":    "services:\n  web:\n    image: x\n    container_name: foo\n    deploy:\n      replicas: 3\n",
		"envfile":  "services:\n  web:\n    image: x\n    env_file: missing.env\n",
		"empty":  "",
		"dupkey":  "services:\n  web:\n    image: x\n    image: y\n",
		"netundef":  "services:\n  web:\n    image: x\n    networks: [foo]\n",
		"volundef":  "services:\n  web:\n    image: x\n    volumes: [\"foo:/data\"]\n",
		"restartbad":  "services:\n  web:\n    image: x\n    restart: sometimes\n",
		"cycle":  "services:\n  a:\n    image: x\n    extends: b\n  b:\n    image: x\n    extends: a\n",
	}
	var names []string
	for n := range cases { names = append(names, n) }
	sort.Strings(names)
	for _, name := range names {
		content := cases[name]
		dir := t.TempDir()
		f := filepath.Join(dir, "compose.yaml")
		os.WriteFile(f, []byte(content), 0o644)
		_, err := Load(context.Background(), Options{WorkingDir: dir, ProjectName: "p", Environ: []string{}})
		fmt.Printf("== %s: %v\n", name, err)
	}
}
