package convert

import (
	"sort"
	"time"

	"github.com/berth-dev/berth/spec"
)

// The golden projects, built the way spec.Load builds them (maps non-nil, every service on
// the default network unless it names others). Each has a compose.yaml twin in
// testdata/convert/<name>/.

func durationPtr(d time.Duration) *time.Duration { return &d }
func boolPtr(b bool) *bool                       { return &b }
func u32(v uint32) *uint32                       { return &v }

func newProject(name string, svcs ...spec.Service) *spec.Project {
	p := &spec.Project{
		Name:       name,
		WorkingDir: "/src/" + name,
		Networks:   map[string]spec.Network{"default": {Name: name + "_default"}},
		Volumes:    map[string]spec.Volume{},
		Secrets:    map[string]spec.FileObject{},
		Configs:    map[string]spec.FileObject{},
	}
	for _, s := range svcs {
		if s.Scale == 0 {
			s.Scale = 1
		}
		if s.Networks == nil && s.NetworkMode == "" {
			s.Networks = map[string]spec.ServiceNetwork{"default": {}}
		}
		if s.Environment == nil {
			s.Environment = map[string]string{}
		}
		if s.DependsOn == nil {
			s.DependsOn = map[string]spec.Dependency{}
		}
		p.Services = append(p.Services, s)
	}
	// spec.Load sorts services by name.
	sort.Slice(p.Services, func(i, j int) bool { return p.Services[i].Name < p.Services[j].Name })
	return p
}

// basic: a web app and its database: ports, environment, env_file, command and entrypoint,
// healthcheck probes, a service_healthy wait, a named volume.
func projectBasic() *spec.Project {
	p := newProject("basic",
		spec.Service{
			Name:  "db",
			Image: "postgres:16",
			Environment: map[string]string{
				"POSTGRES_DB":       "app",
				"POSTGRES_PASSWORD": "example",
			},
			EnvFiles: []string{"/src/basic/db.env"},
			Expose:   []string{"5432"},
			Volumes:  []spec.Mount{{Type: spec.MountVolume, Source: "pgdata", Target: "/var/lib/postgresql/data"}},
			Healthcheck: &spec.Healthcheck{
				Test:        []string{"CMD-SHELL", "pg_isready -U postgres"},
				Interval:    5 * time.Second,
				Timeout:     3 * time.Second,
				Retries:     5,
				StartPeriod: 10 * time.Second,
			},
			Restart: "unless-stopped",
		},
		spec.Service{
			Name:       "web",
			Image:      "example/web:1.2",
			Entrypoint: []string{"/app/server"},
			Command:    []string{"--listen", ":8000", "--greeting", "$(not a var)"},
			WorkingDir: "/app",
			Environment: map[string]string{
				"DATABASE_URL": "postgres://postgres:example@db/app",
				"MODE":         "production",
			},
			Ports: []spec.Port{{Name: "http", Target: 8000, Published: "8080", Protocol: "tcp", Mode: "ingress"}},
			DependsOn: map[string]spec.Dependency{
				"db": {Condition: spec.ConditionHealthy, Required: true},
			},
			Healthcheck: &spec.Healthcheck{
				Test:     []string{"CMD", "wget", "-qO-", "http://localhost:8000/healthz"},
				Interval: 10 * time.Second,
				Timeout:  1500 * time.Millisecond,
			},
			Restart:         "always",
			StopGracePeriod: durationPtr(20 * time.Second),
			Labels:          map[string]string{"com.example.team": "web", "traefik rule": "Host(`x`)"},
		},
	)
	p.Volumes["pgdata"] = spec.Volume{Name: "basic_pgdata"}
	return p
}

// oneshot: a migration Job that the app waits for, a build, a cache without ports that the
// app waits to start (headless Service), a completed_successfully on a long-running service.
func projectOneshot() *spec.Project {
	return newProject("oneshot",
		spec.Service{
			Name:    "app",
			Build:   &spec.Build{Context: "/src/oneshot", Dockerfile: "Dockerfile"},
			Command: []string{"serve"},
			DependsOn: map[string]spec.Dependency{
				"migrate": {Condition: spec.ConditionCompleted, Required: true},
				"cache":   {Condition: spec.ConditionStarted, Required: true},
				"worker":  {Condition: spec.ConditionCompleted, Required: true, Restart: true},
			},
			Ports: []spec.Port{{Target: 3000, Protocol: "tcp"}},
		},
		spec.Service{Name: "cache", Image: "redis:7", Command: []string{"redis-server", "--save", ""}},
		spec.Service{
			Name:    "migrate",
			Build:   &spec.Build{Context: "/src/oneshot", Dockerfile: "Dockerfile"},
			Image:   "registry.example.com/oneshot/app:1",
			Command: []string{"migrate", "up"},
			Restart: "no",
		},
		spec.Service{Name: "worker", Image: "example/worker", Restart: "always", Scale: 2},
		spec.Service{Name: "seed", Image: "example/seed", Restart: "on-failure:3", Scale: 2},
		spec.Service{
			Name:  "report",
			Image: "example/report",
			DependsOn: map[string]spec.Dependency{
				"seed": {Condition: spec.ConditionCompleted, Required: true},
			},
		},
	)
}

// stateful: replicated service with a named volume becomes a StatefulSet with claim templates;
// tmpfs and shm_size become memory-backed emptyDirs.
func projectStateful() *spec.Project {
	p := newProject("stateful",
		spec.Service{
			Name:    "cassandra",
			Image:   "cassandra:5",
			Scale:   3,
			Ports:   []spec.Port{{Target: 9042, Protocol: "tcp"}, {Target: 7000, Protocol: "tcp"}},
			Volumes: []spec.Mount{{Type: spec.MountVolume, Source: "data", Target: "/var/lib/cassandra"}},
			Tmpfs:   []string{"/tmp:size=64m", "/run"},
			ShmSize: 256 << 20,
			Healthcheck: &spec.Healthcheck{
				Test: []string{"CMD", "nodetool", "status"},
			},
			Resources: spec.Resources{MemLimit: 2 << 30, CPUs: 1.5},
		},
	)
	p.Volumes["data"] = spec.Volume{Name: "stateful_data", Labels: map[string]string{
		LabelVolumeSize: "20Gi", LabelStorageClass: "fast-ssd", "com.example.backup": "daily",
	}}
	return p
}

// volumes: bind mounts (warned), anonymous and tmpfs mounts, a volume shared by two
// services, an external volume, a subpath and a driver.
func projectVolumes() *spec.Project {
	p := newProject("volumes",
		spec.Service{
			Name:  "writer",
			Image: "busybox",
			Volumes: []spec.Mount{
				{Type: spec.MountVolume, Source: "shared", Target: "/out"},
				{Type: spec.MountBind, Source: "/src/volumes/conf", Target: "/etc/app", ReadOnly: true, CreateHostPath: true},
				{Type: spec.MountVolume, Target: "/cache"},
				{Type: spec.MountTmpfs, Target: "/scratch", TmpfsSize: 32 << 20},
				{Type: spec.MountVolume, Source: "archive", Target: "/archive", Subpath: "2024"},
			},
		},
		spec.Service{
			Name:  "reader",
			Image: "busybox",
			Volumes: []spec.Mount{
				{Type: spec.MountVolume, Source: "shared", Target: "/in", ReadOnly: true},
				{Type: spec.MountBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock", Propagation: "rshared", SELinux: "z", CreateHostPath: true},
			},
		},
	)
	p.Volumes["shared"] = spec.Volume{Name: "volumes_shared", Driver: "local", DriverOpts: map[string]string{"type": "nfs"}}
	p.Volumes["archive"] = spec.Volume{Name: "archive-2024", External: true}
	return p
}

// hostpath: the volumes project with --allow-hostpath.
func projectHostpath() *spec.Project {
	p := projectVolumes()
	p.Name = "hostpath"
	return p
}

// files: secrets and configs from files, inline content, the environment and external ones.
func projectFiles() *spec.Project {
	p := newProject("files",
		spec.Service{
			Name:  "api",
			Image: "example/api",
			Secrets: []spec.FileRef{
				{Source: "db_password"},
				{Source: "tls_key", Target: "/etc/tls/key.pem", Mode: u32(0o400), UID: "101"},
				{Source: "api_token"},
				{Source: "vault"},
			},
			Configs: []spec.FileRef{
				{Source: "nginx_conf", Target: "/etc/nginx/nginx.conf"},
				{Source: "motd"},
				{Source: "logo"},
			},
		},
	)
	p.Secrets["db_password"] = spec.FileObject{Name: "files_db_password", File: "/src/files/secrets/db_password.txt"}
	p.Secrets["tls_key"] = spec.FileObject{Name: "files_tls_key", File: "/src/files/secrets/tls.key"}
	p.Secrets["api_token"] = spec.FileObject{Name: "files_api_token", Environment: "API_TOKEN"}
	p.Secrets["vault"] = spec.FileObject{Name: "prod-vault", External: true}
	p.Configs["nginx_conf"] = spec.FileObject{Name: "files_nginx_conf", File: "/src/files/nginx.conf"}
	p.Configs["motd"] = spec.FileObject{Name: "files_motd", Content: "welcome to files\n"}
	p.Configs["logo"] = spec.FileObject{Name: "files_logo", File: "/src/files/logo.bin"}
	p.Secrets["unused"] = spec.FileObject{Name: "files_unused", File: "/src/files/missing"}
	return p
}

func filesFiles() mapFiles {
	return mapFiles{
		"/src/files/secrets/db_password.txt": "s3cret\n",
		"/src/files/secrets/tls.key":         "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
		"/src/files/nginx.conf":              "events {}\nhttp { server { listen 80; } }\n",
		"/src/files/logo.bin":                "\x89PNG\r\n\x1a\n\x00\xff",
	}
}

// networks: a public frontend, an internal backend, aliases, links, extra hosts and DNS.
func projectNetworks() *spec.Project {
	p := newProject("networks",
		spec.Service{
			Name:  "proxy",
			Image: "nginx:1.27",
			Ports: []spec.Port{{Target: 80, Published: "80", Protocol: "tcp"}},
			Networks: map[string]spec.ServiceNetwork{
				"frontend": {Aliases: []string{"www", "Bad_Alias"}},
				"backend":  {},
			},
			Links:      []string{"api:api-legacy"},
			ExtraHosts: []string{"gw:host-gateway", "logs.internal:10.0.0.5", "metrics.internal:10.0.0.5"},
			// links imply a dependency (compose-go adds it with restart: true).
			DependsOn: map[string]spec.Dependency{"api": {Condition: spec.ConditionStarted, Restart: true, Required: true}},
			DNS:       []string{"1.1.1.1"},
			DNSSearch: []string{"example.com"},
			DNSOpt:    []string{"ndots:2", "edns0"},
			Hostname:  "edge",
		},
		spec.Service{
			Name:     "api",
			Image:    "example/api",
			Expose:   []string{"9000", "9100-9101/udp"},
			Networks: map[string]spec.ServiceNetwork{"backend": {Aliases: []string{"proxy"}, IPv4Address: "10.210.5.10"}},
		},
		spec.Service{
			Name:      "audit",
			Image:     "example/audit",
			Networks:  map[string]spec.ServiceNetwork{"frontend": {}},
			DependsOn: map[string]spec.Dependency{"api": {Condition: spec.ConditionStarted, Required: true}},
		},
		spec.Service{
			Name:        "sniffer",
			Image:       "example/sniffer",
			NetworkMode: "host",
			Platform:    "linux/arm64/v8",
		},
	)
	p.Networks = map[string]spec.Network{
		"frontend": {Name: "networks_frontend", DriverOpts: map[string]string{"com.docker.network.bridge.name": "br-front"}},
		"backend":  {Name: "networks_backend", Internal: true, IPAM: []spec.IPAMConfig{{Subnet: "10.210.5.0/24"}}},
	}
	return p
}

// expose: published ports as LoadBalancer (and NodePort in the nodeport project), in a
// namespace.
func projectExpose(name string) *spec.Project {
	return newProject(name,
		spec.Service{
			Name:  "web",
			Image: "nginx",
			Ports: []spec.Port{
				{Target: 80, Published: "8080", Protocol: "tcp"},
				{Target: 443, Published: "30443", Protocol: "tcp", HostIP: "127.0.0.1"},
				{Target: 53, Published: "5353", Protocol: "udp", Mode: "host"},
				{Target: 9090, Protocol: "tcp"},
			},
		},
	)
}

// security: user, capabilities, read-only root, privileged, security options, resources,
// grace period, restart, sysctls, groups, and keys that have no mapping.
func projectSecurity() *spec.Project {
	return newProject("security",
		spec.Service{
			Name:        "hardened",
			Image:       "example/app",
			User:        "1000:1000",
			CapAdd:      []string{"NET_BIND_SERVICE"},
			CapDrop:     []string{"ALL"},
			ReadOnly:    true,
			SecurityOpt: []string{"no-new-privileges:true", "seccomp=unconfined", "label=type:svirt_apache_t"},
			Resources: spec.Resources{
				MemLimit:       512 << 20,
				MemReservation: 128 << 20,
				CPUs:           0.5,
				CPUShares:      1024,
				PidsLimit:      100,
			},
			GroupAdd:        []string{"2000", "audio"},
			Sysctls:         map[string]string{"net.core.somaxconn": "1024"},
			StopGracePeriod: durationPtr(1500 * time.Millisecond),
			StopSignal:      "SIGQUIT",
			Restart:         "on-failure:5",
			Ulimits:         map[string]spec.Ulimit{"nofile": {Soft: 1024, Hard: 2048}},
			Init:            boolPtr(true),
			PullPolicy:      "always",
			Tty:             true,
			StdinOpen:       true,
		},
		spec.Service{
			Name:          "root_tool",
			Image:         "example/tool",
			User:          "admin",
			Privileged:    true,
			SecurityOpt:   []string{"no-new-privileges"},
			IPC:           "host",
			PID:           "host",
			ContainerName: "the-tool",
			Logging:       &spec.Logging{Driver: "syslog"},
			Devices:       []string{"/dev/fuse"},
			Scale:         0,
		},
	)
}
