package spec

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// convertProject turns compose-go's project into berth's model. Maps are never nil.
func convertProject(cp *types.Project) (*Project, error) {
	p := &Project{
		Name:         cp.Name,
		WorkingDir:   cp.WorkingDir,
		ComposeFiles: append([]string{}, cp.ComposeFiles...),
		Services:     []Service{},
		Networks:     map[string]Network{},
		Volumes:      map[string]Volume{},
		Secrets:      map[string]FileObject{},
		Configs:      map[string]FileObject{},
		Profiles:     []string{},
	}
	profiles := map[string]bool{}
	for _, name := range sortedKeys(cp.Services) {
		s, err := convertService(cp.Services[name])
		if err != nil {
			return nil, err
		}
		p.Services = append(p.Services, s)
		for _, pr := range s.Profiles {
			profiles[pr] = true
		}
	}
	for _, name := range sortedKeys(cp.DisabledServices) {
		s, err := convertService(cp.DisabledServices[name])
		if err != nil {
			return nil, err
		}
		p.DisabledServices = append(p.DisabledServices, s)
		for _, pr := range s.Profiles {
			profiles[pr] = true
		}
	}
	for pr := range profiles {
		p.Profiles = append(p.Profiles, pr)
	}
	sort.Strings(p.Profiles)

	for k, n := range cp.Networks {
		net := Network{
			Name:       n.Name,
			Driver:     n.Driver,
			DriverOpts: copyMap(n.DriverOpts),
			Internal:   n.Internal,
			External:   bool(n.External),
			Attachable: n.Attachable,
			EnableIPv6: n.EnableIPv6 != nil && *n.EnableIPv6,
			Labels:     copyMap(n.Labels),
			IPAM:       []IPAMConfig{},
		}
		for _, pool := range n.Ipam.Config {
			if pool == nil {
				continue
			}
			net.IPAM = append(net.IPAM, IPAMConfig{Subnet: pool.Subnet, Gateway: pool.Gateway, IPRange: pool.IPRange})
		}
		p.Networks[k] = net
	}
	for k, v := range cp.Volumes {
		p.Volumes[k] = Volume{
			Name:       v.Name,
			Driver:     v.Driver,
			DriverOpts: copyMap(v.DriverOpts),
			External:   bool(v.External),
			Labels:     copyMap(v.Labels),
		}
	}
	for k, s := range cp.Secrets {
		p.Secrets[k] = FileObject{Name: s.Name, File: s.File, Environment: s.Environment, Content: s.Content, External: bool(s.External)}
	}
	for k, c := range cp.Configs {
		p.Configs[k] = FileObject{Name: c.Name, File: c.File, Environment: c.Environment, Content: c.Content, External: bool(c.External)}
	}
	return p, nil
}

func convertService(s types.ServiceConfig) (Service, error) {
	out := Service{
		Name:          s.Name,
		Image:         s.Image,
		Environment:   map[string]string{},
		EnvFiles:      []string{},
		WorkingDir:    s.WorkingDir,
		User:          s.User,
		GroupAdd:      copySlice(s.GroupAdd),
		Hostname:      s.Hostname,
		Domainname:    s.DomainName,
		ContainerName: s.ContainerName,
		Ports:         []Port{},
		Expose:        copySlice(s.Expose),
		Volumes:       []Mount{},
		VolumesFrom:   copySlice(s.VolumesFrom),
		Tmpfs:         copySlice(s.Tmpfs),
		Networks:      map[string]ServiceNetwork{},
		NetworkMode:   s.NetworkMode,
		Links:         copySlice(s.Links),
		ExtraHosts:    []string{},
		DNS:           copySlice(s.DNS),
		DNSSearch:     copySlice(s.DNSSearch),
		DNSOpt:        copySlice(s.DNSOpts),
		MacAddress:    s.MacAddress,
		DependsOn:     map[string]Dependency{},
		Restart:       s.Restart,
		StopSignal:    s.StopSignal,
		Labels:        copyMap(s.Labels),
		Annotations:   copyMap(s.Annotations),
		Profiles:      copySlice(s.Profiles),
		Scale:         1,
		Ulimits:       map[string]Ulimit{},
		CapAdd:        copySlice(s.CapAdd),
		CapDrop:       copySlice(s.CapDrop),
		Privileged:    s.Privileged,
		ReadOnly:      s.ReadOnly,
		SecurityOpt:   copySlice(s.SecurityOpt),
		Sysctls:       copyMap(s.Sysctls),
		Devices:       []string{},
		ShmSize:       int64(s.ShmSize),
		IPC:           s.Ipc,
		PID:           s.Pid,
		UsernsMode:    s.UserNSMode,
		Tty:           s.Tty,
		StdinOpen:     s.StdinOpen,
		PullPolicy:    s.PullPolicy,
		Platform:      s.Platform,
		Secrets:       []FileRef{},
		Configs:       []FileRef{},
		Extensions:    map[string]any{},
	}
	if s.Command != nil {
		out.Command = append([]string{}, s.Command...)
	}
	if s.Entrypoint != nil {
		out.Entrypoint = append([]string{}, s.Entrypoint...)
	}
	// Environment: compose-go has merged env_file entries and put environment on top; a
	// variable without a value that is not in the environment has no value: drop it.
	for k, v := range s.Environment {
		if v != nil {
			out.Environment[k] = *v
		}
	}
	for _, f := range s.EnvFiles {
		out.EnvFiles = append(out.EnvFiles, f.Path)
	}
	if s.Build != nil {
		b := &Build{
			Context:          s.Build.Context,
			Dockerfile:       s.Build.Dockerfile,
			DockerfileInline: s.Build.DockerfileInline,
			Args:             map[string]string{},
			Target:           s.Build.Target,
			Labels:           copyMap(s.Build.Labels),
			Tags:             copySlice(s.Build.Tags),
			Network:          s.Build.Network,
			NoCache:          s.Build.NoCache,
			Pull:             s.Build.Pull,
			Platforms:        copySlice(s.Build.Platforms),
		}
		for k, v := range s.Build.Args {
			if v != nil {
				b.Args[k] = *v
			}
		}
		out.Build = b
	}
	for _, pc := range s.Ports {
		out.Ports = append(out.Ports, Port{
			Name:      pc.Name,
			HostIP:    pc.HostIP,
			Published: pc.Published,
			Target:    pc.Target,
			Protocol:  defaultString(pc.Protocol, "tcp"),
			Mode:      defaultString(pc.Mode, "ingress"),
		})
	}
	for _, v := range s.Volumes {
		m := Mount{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeBind:
			if v.Bind != nil {
				m.CreateHostPath = bool(v.Bind.CreateHostPath)
				m.Propagation = v.Bind.Propagation
				m.SELinux = v.Bind.SELinux
			}
		case types.VolumeTypeVolume:
			if v.Volume != nil {
				m.NoCopy = v.Volume.NoCopy
				m.Subpath = v.Volume.Subpath
			}
		case types.VolumeTypeTmpfs:
			if v.Tmpfs != nil {
				m.TmpfsSize = int64(v.Tmpfs.Size)
				m.TmpfsMode = v.Tmpfs.Mode
			}
		}
		out.Volumes = append(out.Volumes, m)
	}
	if s.NetworkMode == "" {
		for name, n := range s.Networks {
			sn := ServiceNetwork{Aliases: []string{}}
			if n != nil {
				sn.Aliases = copySlice(n.Aliases)
				sn.IPv4Address = n.Ipv4Address
				sn.IPv6Address = n.Ipv6Address
				sn.Priority = n.Priority
			}
			out.Networks[name] = sn
		}
	}
	for host, ips := range s.ExtraHosts {
		for _, ip := range ips {
			out.ExtraHosts = append(out.ExtraHosts, host+":"+ip)
		}
	}
	sort.Strings(out.ExtraHosts)
	for name, d := range s.DependsOn {
		out.DependsOn[name] = Dependency{
			Condition: defaultString(d.Condition, ConditionStarted),
			Restart:   d.Restart,
			Required:  d.Required,
		}
	}
	if hc := s.HealthCheck; hc != nil {
		h := &Healthcheck{Test: copySlice(hc.Test), Disable: hc.Disable}
		if len(hc.Test) > 0 && hc.Test[0] == "NONE" {
			h.Disable = true
		}
		h.Interval = durationOf(hc.Interval)
		h.Timeout = durationOf(hc.Timeout)
		h.StartPeriod = durationOf(hc.StartPeriod)
		h.StartInterval = durationOf(hc.StartInterval)
		if hc.Retries != nil {
			h.Retries = int(*hc.Retries)
		}
		out.Healthcheck = h
	}
	if s.StopGracePeriod != nil {
		d := time.Duration(*s.StopGracePeriod)
		out.StopGracePeriod = &d
	}
	if s.Init != nil {
		v := *s.Init
		out.Init = &v
	}

	// Scale: scale, else deploy.replicas, else 1 (compose-go checks they agree).
	switch {
	case s.Scale != nil:
		out.Scale = *s.Scale
	case s.Deploy != nil && s.Deploy.Replicas != nil:
		out.Scale = *s.Deploy.Replicas
	}

	// Resources: the service-level keys win; deploy.resources fills the rest.
	r := Resources{
		MemLimit:       int64(s.MemLimit),
		MemReservation: int64(s.MemReservation),
		MemSwapLimit:   int64(s.MemSwapLimit),
		CPUs:           cleanFloat(float32(s.CPUS)),
		CPUShares:      s.CPUShares,
		Cpuset:         s.CPUSet,
		PidsLimit:      s.PidsLimit,
	}
	if s.Deploy != nil {
		if l := s.Deploy.Resources.Limits; l != nil {
			if r.MemLimit == 0 {
				r.MemLimit = int64(l.MemoryBytes)
			}
			if r.CPUs == 0 {
				r.CPUs = cleanFloat(float32(l.NanoCPUs))
			}
			if r.PidsLimit == 0 {
				r.PidsLimit = l.Pids
			}
		}
		if rv := s.Deploy.Resources.Reservations; rv != nil && r.MemReservation == 0 {
			r.MemReservation = int64(rv.MemoryBytes)
		}
	}
	out.Resources = r

	for name, u := range s.Ulimits {
		if u == nil {
			continue
		}
		if u.Single != 0 {
			out.Ulimits[name] = Ulimit{Soft: int64(u.Single), Hard: int64(u.Single)}
		} else {
			out.Ulimits[name] = Ulimit{Soft: int64(u.Soft), Hard: int64(u.Hard)}
		}
	}
	for _, d := range s.Devices {
		dev := d.Source
		if d.Target != "" {
			dev += ":" + d.Target
		}
		if d.Permissions != "" {
			if d.Target == "" {
				dev += ":" + d.Source
			}
			dev += ":" + d.Permissions
		}
		out.Devices = append(out.Devices, dev)
	}
	if s.Logging != nil {
		out.Logging = &Logging{Driver: s.Logging.Driver, Options: copyMap(s.Logging.Options)}
	} else if s.LogDriver != "" || len(s.LogOpt) > 0 {
		out.Logging = &Logging{Driver: s.LogDriver, Options: copyMap(s.LogOpt)}
	}
	for _, sec := range s.Secrets {
		out.Secrets = append(out.Secrets, fileRef(types.FileReferenceConfig(sec)))
	}
	for _, c := range s.Configs {
		out.Configs = append(out.Configs, fileRef(types.FileReferenceConfig(c)))
	}
	for k, v := range s.Extensions {
		out.Extensions[k] = jsonable(v)
	}
	return out, nil
}

func fileRef(f types.FileReferenceConfig) FileRef {
	r := FileRef{Source: f.Source, Target: f.Target, UID: f.UID, GID: f.GID}
	if f.Mode != nil {
		m := uint32(*f.Mode)
		r.Mode = &m
	}
	return r
}

// jsonable converts decoded YAML values so that encoding/json accepts them (no map[any]any).
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = jsonable(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = jsonable(e)
		}
		return l
	default:
		return v
	}
}

// cleanFloat widens a float32 without the binary noise (0.1 stays 0.1, not 0.10000000149).
func cleanFloat(f float32) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil {
		return float64(f)
	}
	return v
}

func durationOf(d *types.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func copyMap[M ~map[string]string](m M) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func copySlice[S ~[]string](s S) []string {
	if s == nil {
		return []string{}
	}
	return append([]string{}, s...)
}

func sortedKeys[V any, M ~map[string]V](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// joinPath builds "services.<svc>.<rest>".
func servicePath(svc string, rest ...string) string {
	return strings.Join(append([]string{"services", svc}, rest...), ".")
}
