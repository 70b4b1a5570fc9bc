//go:build tools

// Package tools pins the module's dependencies before every package that uses them exists.
package tools

import (
	_ "github.com/compose-spec/compose-go/v2/cli"
	_ "github.com/docker/go-units"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/nftables"
	_ "github.com/miekg/dns"
	_ "github.com/moby/buildkit/frontend/dockerfile/parser"
	_ "github.com/moby/profiles/seccomp"
	_ "github.com/moby/sys/mountinfo"
	_ "github.com/opencontainers/go-digest"
	_ "github.com/opencontainers/image-spec/specs-go/v1"
	_ "github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	_ "github.com/opencontainers/runtime-spec/specs-go"
	_ "github.com/spf13/cobra"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "gopkg.in/yaml.v3"
	_ "k8s.io/api/apps/v1"
	_ "sigs.k8s.io/yaml"
)
