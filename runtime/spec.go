package runtime

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	"github.com/opencontainers/runc/libcontainer/configs"
	libseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultCaps is Docker's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var maskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

const (
	defaultShmSize = 64 << 20
	initPath       = "/dev/.berth-init"
	// seccompLoaderPath is where berth-seccomp is mounted (when it is installed).
	seccompLoaderPath = "/dev/.berth-seccomp"
	defaultPath       = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// allCaps lists every capability name the running kernel knows.
func allCaps() []string {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	var out []string
	for i := 0; i <= last; i++ {
		// Only capabilities this process may hand out (its bounding set).
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0); err != nil || in != 1 {
			continue
		}
		if name, ok := capNames[i]; ok {
			out = append(out, name)
		}
	}
	return out
}

var capNames = map[int]string{
	0: "CAP_CHOWN", 1: "CAP_DAC_OVERRIDE", 2: "CAP_DAC_READ_SEARCH", 3: "CAP_FOWNER", 4: "CAP_FSETID",
	5: "CAP_KILL", 6: "CAP_SETGID", 7: "CAP_SETUID", 8: "CAP_SETPCAP", 9: "CAP_LINUX_IMMUTABLE",
	10: "CAP_NET_BIND_SERVICE", 11: "CAP_NET_BROADCAST", 12: "CAP_NET_ADMIN", 13: "CAP_NET_RAW",
	14: "CAP_IPC_LOCK", 15: "CAP_IPC_OWNER", 16: "CAP_SYS_MODULE", 17: "CAP_SYS_RAWIO",
	18: "CAP_SYS_CHROOT", 19: "CAP_SYS_PTRACE", 20: "CAP_SYS_PACCT", 21: "CAP_SYS_ADMIN",
	22: "CAP_SYS_BOOT", 23: "CAP_SYS_NICE", 24: "CAP_SYS_RESOURCE", 25: "CAP_SYS_TIME",
	26: "CAP_SYS_TTY_CONFIG", 27: "CAP_MKNOD", 28: "CAP_LEASE", 29: "CAP_AUDIT_WRITE",
	30: "CAP_AUDIT_CONTROL", 31: "CAP_SETFCAP", 32: "CAP_MAC_OVERRIDE", 33: "CAP_MAC_ADMIN",
	34: "CAP_SYSLOG", 35: "CAP_WAKE_ALARM", 36: "CAP_BLOCK_SUSPEND", 37: "CAP_AUDIT_READ",
	38: "CAP_PERFMON", 39: "CAP_BPF", 40: "CAP_CHECKPOINT_RESTORE",
}

func normCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" {
		return c
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// capabilities applies cap_add/cap_drop (and privileged) to Docker's default set.
func capabilities(c *ContainerConfig) ([]string, error) {
	if c.Privileged {
		return allCaps(), nil
	}
	known := map[string]bool{}
	for _, n := range capNames {
		known[n] = true
	}
	set := map[string]bool{}
	for _, k := range defaultCaps {
		set[k] = true
	}
	for _, d := range c.CapDrop {
		d = normCap(d)
		if d == "ALL" {
			clear(set)
			continue
		}
		if !known[d] {
			return nil, fmt.Errorf("cap_drop: unknown capability %q: %w", d, ErrInvalid)
		}
		delete(set, d)
	}
	for _, a := range c.CapAdd {
		a = normCap(a)
		if a == "ALL" {
			for _, n := range allCaps() {
				set[n] = true
			}
			continue
		}
		if !known[a] {
			return nil, fmt.Errorf("cap_add: unknown capability %q: %w", a, ErrInvalid)
		}
		set[a] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// secOpts are the parsed security_opt values.
type secOpts struct {
	seccompUnconfined bool
	noNewPrivs        bool
}

func parseSecurityOpt(opts []string) (secOpts, error) {
	s := secOpts{noNewPrivs: true}
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if !strings.Contains(o, "=") {
			k, v, _ = strings.Cut(o, ":")
		}
		switch k {
		case "seccomp":
			if v != "unconfined" {
				return s, fmt.Errorf("security_opt %q: only seccomp=unconfined is supported: %w", o, ErrInvalid)
			}
			s.seccompUnconfined = true
		case "no-new-privileges":
			b := true
			if v != "" {
				var err error
				if b, err = strconv.ParseBool(v); err != nil {
					return s, fmt.Errorf("security_opt %q: %w", o, ErrInvalid)
				}
			}
			s.noNewPrivs = b
		case "label", "apparmor":
			// Accepted and ignored: no LSM is configured by berth.
		default:
			return s, fmt.Errorf("security_opt %q is not supported: %w", o, ErrInvalid)
		}
	}
	return s, nil
}

// execUser is a resolved user.
type execUser struct {
	UID, GID int
	Groups   []int
	Home     string
}

// resolveUser resolves spec ("name", "uid", "name:group", "uid:gid") against the rootfs'
// /etc/passwd and /etc/group, which are looked up without leaving the rootfs.
func resolveUser(rootfs, spec string, groupAdd []string) (execUser, error) {
	passwd, _ := securejoin.SecureJoin(rootfs, "/etc/passwd")
	group, _ := securejoin.SecureJoin(rootfs, "/etc/group")
	def := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	u, err := user.GetExecUserPath(spec, def, passwd, group)
	if err != nil {
		return execUser{}, fmt.Errorf("user %q: %w: %w", spec, err, ErrInvalid)
	}
	eu := execUser{UID: u.Uid, GID: u.Gid, Groups: u.Sgids, Home: u.Home}
	if len(groupAdd) > 0 {
		extra, err := user.GetAdditionalGroupsPath(groupAdd, group)
		if err != nil {
			return execUser{}, fmt.Errorf("group_add %v: %w: %w", groupAdd, err, ErrInvalid)
		}
		for _, g := range extra {
			if !slices.Contains(eu.Groups, g) {
				eu.Groups = append(eu.Groups, g)
			}
		}
	}
	return eu, nil
}

// rlimitNames maps Docker's ulimit names to RLIMIT_* numbers.
var rlimitNames = map[string]int{
	"core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
	"as": unix.RLIMIT_AS,
}

// clampUlimits converts ulimits and lowers any value above this process' hard limit (which
// cannot be raised without CAP_SYS_RESOURCE); warn receives one message per clamped limit.
func clampUlimits(ul []Ulimit, warn func(string)) ([]configs.Rlimit, error) {
	var out []configs.Rlimit
	for _, u := range ul {
		typ, ok := rlimitNames[strings.ToLower(u.Name)]
		if !ok {
			return nil, fmt.Errorf("ulimit %q: unknown name: %w", u.Name, ErrInvalid)
		}
		soft, hard := toRlim(u.Soft), toRlim(u.Hard)
		if soft > hard {
			return nil, fmt.Errorf("ulimit %s: soft %d above hard %d: %w", u.Name, u.Soft, u.Hard, ErrInvalid)
		}
		var cur unix.Rlimit
		if err := unix.Getrlimit(typ, &cur); err == nil && hard > cur.Max {
			if warn != nil {
				warn(fmt.Sprintf("ulimit %s: hard %d above the allowed maximum %d; clamped", u.Name, u.Hard, cur.Max))
			}
			hard = cur.Max
			soft = min(soft, hard)
		}
		out = append(out, configs.Rlimit{Type: typ, Soft: soft, Hard: hard})
	}
	return out, nil
}

func toRlim(v int64) uint64 {
	if v < 0 {
		return unix.RLIM_INFINITY
	}
	return uint64(v)
}

// libctConfig converts a ContainerConfig to libcontainer's configuration through an OCI spec,
// and returns the init process' resolved user and environment too.
func (r *Runtime) libctConfig(c *ContainerConfig, dir string, warn func(string)) (*configs.Config, error) {
	if _, err := usernsEnabled(c.UsernsMode); err != nil {
		return nil, err
	}
	if err := r.resolveNamespaceModes(c); err != nil {
		return nil, err
	}
	if err := r.resolveVolumesFrom(c); err != nil {
		return nil, err
	}
	caps, err := capabilities(c)
	if err != nil {
		return nil, err
	}
	so, err := parseSecurityOpt(c.SecurityOpt)
	if err != nil {
		return nil, err
	}
	shm := c.ShmSize
	if shm <= 0 {
		shm = defaultShmSize
	}
	s := &specs.Spec{
		Version:    specs.Version,
		Root:       &specs.Root{Path: c.Rootfs, Readonly: c.ReadOnly},
		Hostname:   c.Hostname,
		Domainname: c.Domainname,
		Process: &specs.Process{
			NoNewPrivileges: so.noNewPrivs && !c.Privileged,
			OOMScoreAdj:     nil,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/berth/" + c.ID,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.CgroupNamespace},
			},
			Sysctl:    c.Sysctls,
			Resources: &specs.LinuxResources{},
		},
	}
	if c.Resources.OOMScoreAdj != 0 {
		v := c.Resources.OOMScoreAdj
		s.Process.OOMScoreAdj = &v
	}
	if c.Privileged {
		s.Mounts[3].Options = []string{"nosuid", "noexec", "nodev", "rw"}
		s.Mounts[4].Options = []string{"rw", "nosuid", "noexec", "nodev"}
	} else {
		s.Linux.MaskedPaths = maskedPaths
		s.Linux.ReadonlyPaths = readonlyPaths
	}
	switch c.NetNSPath {
	case "host":
	case "":
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	default:
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: c.NetNSPath})
	}
	if c.NetNSPath == "host" && c.Hostname == "" {
		s.Hostname = ""
		// Keep the host's UTS namespace with the host network, as Docker does.
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UTSNamespace })
	}
	if err := r.applyNamespaces(c, s, warn); err != nil {
		return nil, err
	}

	// Files the runtime provides.
	for _, f := range []struct{ name, target, content string }{
		{"hosts", "/etc/hosts", c.Hosts},
		{"resolv.conf", "/etc/resolv.conf", c.ResolvConf},
		{"hostname", "/etc/hostname", hostnameFile(c)},
	} {
		if f.content == "" {
			continue
		}
		p := filepath.Join(dir, f.name)
		if err := writeFileAtomic(p, []byte(f.content), 0o644); err != nil {
			return nil, err
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: f.target, Type: "bind", Source: p, Options: []string{"rbind", "rprivate"}})
	}

	// User mounts.
	for _, m := range c.Mounts {
		sm, err := specMount(m)
		if err != nil {
			return nil, err
		}
		s.Mounts = append(s.Mounts, sm)
	}
	targets := make([]string, 0, len(c.Tmpfs))
	for t := range c.Tmpfs {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		sm, err := specMount(Mount{Type: "tmpfs", Target: t, Options: splitOpts(c.Tmpfs[t])})
		if err != nil {
			return nil, err
		}
		s.Mounts = append(s.Mounts, sm)
	}
	// The default seccomp profile, precompiled (seccomp_fast.go) when the shim can load it.
	var sc *configs.Seccomp
	fastSeccomp := false
	if !so.seccompUnconfined && !c.Privileged && libseccomp.Enabled {
		if sc, err = r.seccompFor(caps); err != nil {
			return nil, err
		}
		if _, static := r.staticShim(); static && fastSeccompOK(sc, s.Process.NoNewPrivileges) {
			if err := r.linkSeccomp(sc, dir); err == nil {
				fastSeccomp = true
			} else {
				r.log.Debug("seccomp precompilation failed; libcontainer compiles the profile at each start", "err", err)
			}
		}
	}
	if loader, ok := r.seccompLoader(); fastSeccomp && ok {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: seccompLoaderPath, Type: "bind", Source: loader, Options: []string{"bind", "ro", "rprivate"}})
	} else if fastSeccomp && !c.Init {
		exe, _ := r.staticShim()
		s.Mounts = append(s.Mounts, specs.Mount{Destination: initPath, Type: "bind", Source: exe, Options: []string{"bind", "ro", "rprivate"}})
	}
	if c.Init {
		exe, ok := r.staticShim()
		if !ok {
			exe = r.shim
		}
		if exe == "/proc/self/exe" {
			var err error
			if exe, err = os.Executable(); err != nil {
				return nil, fmt.Errorf("init: find berth binary: %w", err)
			}
		}
		if !isStatic(exe) {
			return nil, fmt.Errorf("init: the berth binary %s is dynamically linked and cannot run inside the container; build it static (-ldflags '-extldflags=-static'): %w", exe, ErrInvalid)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: initPath, Type: "bind", Source: exe, Options: []string{"bind", "ro", "rprivate"}})
	}

	// Devices.
	res := s.Linux.Resources
	if c.Privileged {
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, d := range c.Devices {
		ld, err := hostDevice(d)
		if err != nil {
			return nil, err
		}
		s.Linux.Devices = append(s.Linux.Devices, ld)
		perms := d.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		major, minor := ld.Major, ld.Minor
		res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: ld.Type, Major: &major, Minor: &minor, Access: perms})
	}

	// Cgroup limits.
	rs := c.Resources
	if rs.Memory > 0 || rs.MemoryReservation > 0 || rs.MemorySwap != 0 {
		res.Memory = &specs.LinuxMemory{}
		if rs.Memory > 0 {
			v := rs.Memory
			res.Memory.Limit = &v
		}
		if rs.MemoryReservation > 0 {
			v := rs.MemoryReservation
			res.Memory.Reservation = &v
		}
		if rs.MemorySwap != 0 && rs.Memory > 0 {
			if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil || isCgroup2() {
				v := rs.MemorySwap
				res.Memory.Swap = &v
			} else if warn != nil {
				warn("memory swap limit ignored: the kernel has no swap accounting")
			}
		}
	}
	if rs.CPUs > 0 || rs.CPUShares > 0 || rs.CpusetCpus != "" || rs.CpusetMems != "" {
		res.CPU = &specs.LinuxCPU{Cpus: rs.CpusetCpus, Mems: rs.CpusetMems}
		if rs.CPUShares > 0 {
			v := rs.CPUShares
			res.CPU.Shares = &v
		}
		if rs.CPUs > 0 {
			period := uint64(100000)
			quota := int64(rs.CPUs * float64(period))
			res.CPU.Period = &period
			res.CPU.Quota = &quota
		}
	}
	if rs.PidsLimit != 0 {
		v := rs.PidsLimit
		res.Pids = &specs.LinuxPids{Limit: &v}
	}

	rl, err := clampUlimits(c.Ulimits, warn)
	if err != nil {
		return nil, err
	}
	// Last, as it mounts the container's own root filesystem when it has a user namespace.
	if err := r.applyUserns(c, s, dir); err != nil {
		return nil, err
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:   c.ID,
		Spec:         s,
		NoNewKeyring: false,
	})
	if err != nil {
		if c.IDMappedRootfs != nil {
			_ = unix.Unmount(c.Rootfs, unix.MNT_DETACH)
		}
		return nil, fmt.Errorf("convert container config: %w: %w", err, ErrInvalid)
	}
	if !so.seccompUnconfined && !c.Privileged && !libseccomp.Enabled && warn != nil {
		warn("berth was built without the seccomp build tag: the container runs without a seccomp profile")
	}
	if sc != nil {
		cfg.Seccomp = sc
	}
	cfg.Rlimits = rl
	return cfg, nil
}

func hostnameFile(c *ContainerConfig) string {
	if c.Hostname == "" || c.NetNSPath == "host" {
		return ""
	}
	return c.Hostname + "\n"
}

func isCgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

func splitOpts(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// specMount converts one Mount, creating a missing bind source directory as Docker does.
func specMount(m Mount) (specs.Mount, error) {
	if !filepath.IsAbs(m.Target) {
		return specs.Mount{}, fmt.Errorf("mount target %q must be absolute: %w", m.Target, ErrInvalid)
	}
	switch m.Type {
	case "bind", "volume", "":
		if m.Source == "" {
			return specs.Mount{}, fmt.Errorf("mount %s: no source: %w", m.Target, ErrInvalid)
		}
		if _, err := os.Stat(m.Source); os.IsNotExist(err) {
			if err := os.MkdirAll(m.Source, 0o755); err != nil {
				return specs.Mount{}, fmt.Errorf("create bind source %s: %w", m.Source, err)
			}
		}
		opts := []string{"rbind"}
		prop := "rprivate"
		for _, o := range m.Options {
			switch o {
			case "z", "Z", "rbind", "bind", "":
			case "ro", "readonly":
				m.ReadOnly = true
			case "rw":
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				prop = o
			default:
				opts = append(opts, o)
			}
		}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		opts = append(opts, prop)
		return specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: opts}, nil
	case "tmpfs":
		opts := []string{"nosuid", "nodev", "noexec"}
		for _, o := range m.Options {
			switch {
			case o == "exec":
				opts = slices.DeleteFunc(opts, func(s string) bool { return s == "noexec" })
			case strings.HasPrefix(o, "size="), strings.HasPrefix(o, "mode="), strings.HasPrefix(o, "uid="),
				strings.HasPrefix(o, "gid="), strings.HasPrefix(o, "nr_inodes="), o == "ro", o == "rw",
				o == "noexec", o == "nosuid", o == "nodev", o == "suid", o == "dev":
				opts = append(opts, o)
			case strings.HasPrefix(o, "tmpfs-size="):
				opts = append(opts, "size="+strings.TrimPrefix(o, "tmpfs-size="))
			case strings.HasPrefix(o, "tmpfs-mode="):
				opts = append(opts, "mode="+strings.TrimPrefix(o, "tmpfs-mode="))
			default:
				return specs.Mount{}, fmt.Errorf("tmpfs %s: unsupported option %q: %w", m.Target, o, ErrInvalid)
			}
		}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		return specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: opts}, nil
	default:
		return specs.Mount{}, fmt.Errorf("mount %s: unknown type %q: %w", m.Target, m.Type, ErrInvalid)
	}
}

func hostDevice(d Device) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.PathOnHost, &st); err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("device %s: %w", d.PathOnHost, err)
	}
	typ := ""
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("device %s is not a device node: %w", d.PathOnHost, ErrInvalid)
	}
	p := d.PathInContainer
	if p == "" {
		p = d.PathOnHost
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: p, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}

// isStatic reports whether the ELF binary at path has no program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// processEnv completes the environment of a container process.
func processEnv(env []string, u execUser, hostname string, tty bool) []string {
	has := func(k string) bool {
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	out := slices.Clone(env)
	if !has("PATH") {
		out = append(out, defaultPath)
	}
	if !has("HOSTNAME") && hostname != "" {
		out = append(out, "HOSTNAME="+hostname)
	}
	if !has("HOME") {
		home := u.Home
		if home == "" {
			home = "/"
		}
		out = append(out, "HOME="+home)
	}
	if tty && !has("TERM") {
		out = append(out, "TERM=xterm")
	}
	return out
}
