package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/storage"
	"github.com/berth-dev/berth/storage/build"
)

// addImageCommands registers `berth image ...` and the top-level short forms Docker has and
// Compose lacks (rmi, tag, history, import, load, save, login, logout).
func addImageCommands(root *cobra.Command, a *app) {
	img := &cobra.Command{
		Use:   "image",
		Short: "Manage images",
	}
	img.AddCommand(
		imageLsCmd(a), imageInspectCmd(a), imageTagCmd(a), imageRmCmd(a, "rm"), imagePruneCmd(a),
		imageHistoryCmd(a), imageImportCmd(a), imageLoadCmd(a), imageSaveCmd(a), imagePullCmd(a), imagePushCmd(a),
	)
	root.AddCommand(img)
	root.AddCommand(imageRmCmd(a, "rmi"), imageTagCmd(a), imageHistoryCmd(a), imageImportCmd(a), imageLoadCmd(a), imageSaveCmd(a),
		imageLoginCmd(a), imageLogoutCmd(a))
}

func imageOpen(a *app) (*storage.Store, error) {
	return storage.Open(filepath.Join(a.opts.Root, "storage"))
}

func imageWithStore(a *app, fn func(s *storage.Store) error) error {
	s, err := imageOpen(a)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

func imageShortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func imageSize(n int64) string {
	switch {
	case n >= 1000*1000*1000:
		return fmt.Sprintf("%.3gGB", float64(n)/1e9)
	case n >= 1000*1000:
		return fmt.Sprintf("%.3gMB", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.3gkB", float64(n)/1e3)
	}
	return fmt.Sprintf("%dB", n)
}

func imageAgo(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return imagePlural(int(d.Minutes()), "minute") + " ago"
	case d < 48*time.Hour:
		return imagePlural(int(d.Hours()), "hour") + " ago"
	case d < 14*24*time.Hour:
		return imagePlural(int(d.Hours()/24), "day") + " ago"
	case d < 60*24*time.Hour:
		return imagePlural(int(d.Hours()/24/7), "week") + " ago"
	case d < 2*365*24*time.Hour:
		return imagePlural(int(d.Hours()/24/30), "month") + " ago"
	}
	return imagePlural(int(d.Hours()/24/365), "year") + " ago"
}

func imagePlural(n int, unit string) string {
	if n == 1 {
		if unit == "hour" {
			return "An hour"
		}
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func imageSplitTag(ref string) (string, string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}

// ---- ls ----

type imageRow struct {
	Containers   string `json:"Containers"`
	CreatedAt    string `json:"CreatedAt"`
	CreatedSince string `json:"CreatedSince"`
	Digest       string `json:"Digest"`
	ID           string `json:"ID"`
	Repository   string `json:"Repository"`
	SharedSize   string `json:"SharedSize"`
	Size         string `json:"Size"`
	Tag          string `json:"Tag"`
	UniqueSize   string `json:"UniqueSize"`
	VirtualSize  string `json:"VirtualSize"`
}

func imageLsCmd(a *app) *cobra.Command {
	var quiet, digests, noTrunc, all bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS] [REPOSITORY[:TAG]]",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var dangling *bool
			var refPatterns []string
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				switch {
				case ok && k == "dangling":
					b := v == "true" || v == "1"
					if !b && v != "false" && v != "0" {
						return fmt.Errorf("--filter dangling=%s: use true or false", v)
					}
					dangling = &b
				case ok && k == "reference":
					refPatterns = append(refPatterns, v)
				default:
					return fmt.Errorf("--filter %q: supported filters are dangling=true|false and reference=PATTERN", f)
				}
			}
			if len(args) == 1 {
				refPatterns = append(refPatterns, args[0])
			}
			return imageWithStore(a, func(s *storage.Store) error {
				imgs, err := s.List(cmd.Context())
				if err != nil {
					return err
				}
				var rows []imageRow
				seen := map[string]bool{}
				// Build steps are kept as untagged images for the build cache; like Docker's
				// intermediate images they are listed only with -a.
				intermediate := map[string]bool{}
				if !all {
					if intermediate, err = build.CachedImages(s.Root(), ""); err != nil {
						return err
					}
				}
				for _, img := range imgs {
					isDangling := len(img.RepoTags) == 0
					if isDangling && intermediate[img.ID] {
						continue
					}
					if dangling != nil && *dangling != isDangling {
						continue
					}
					id := img.ID
					if !noTrunc {
						id = imageShortID(id)
					}
					base := imageRow{Containers: "N/A", CreatedAt: img.Created.Format("2006-01-02 15:04:05 -0700 MST"), CreatedSince: imageAgo(img.Created),
						ID: id, Size: imageSize(img.Size), SharedSize: "N/A", UniqueSize: "N/A", VirtualSize: imageSize(img.Size), Digest: "<none>"}
					digestFor := func(repo string) string {
						for _, d := range img.RepoDigests {
							if r, dg := imageSplitTag(d); r == repo {
								return dg
							}
						}
						return "<none>"
					}
					if isDangling {
						if len(refPatterns) > 0 {
							continue
						}
						r := base
						r.Repository, r.Tag = "<none>", "<none>"
						if len(img.RepoDigests) > 0 {
							r.Repository, r.Digest = imageSplitTag(img.RepoDigests[0])
						}
						rows = append(rows, r)
						continue
					}
					for _, t := range img.RepoTags {
						repo, tag := imageSplitTag(t)
						if len(refPatterns) > 0 && !imageMatchRef(refPatterns, repo, t) {
							continue
						}
						r := base
						r.Repository, r.Tag, r.Digest = repo, tag, digestFor(repo)
						rows = append(rows, r)
					}
				}
				if quiet {
					for _, r := range rows {
						if !seen[r.ID] {
							seen[r.ID] = true
							fmt.Fprintln(a.stdout, r.ID)
						}
					}
					return nil
				}
				if format != "" && format != "table" {
					return imageFormatRows(a, format, rows)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				if digests {
					fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
				} else {
					fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
				}
				for _, r := range rows {
					if digests {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size)
					} else {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size)
					}
				}
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&digests, "digests", false, "Show digests")
	f.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&all, "all", "a", false, "Show all images, including the build cache's intermediate ones")
	f.StringArrayVarP(&filters, "filter", "f", nil, "Filter output: dangling=true|false, reference=PATTERN")
	f.StringVar(&format, "format", "", "Output format: table, json, or a Go template")
	return cmd
}

func imageMatchRef(patterns []string, repo, tagged string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, repo); ok {
			return true
		}
		if ok, _ := path.Match(p, tagged); ok {
			return true
		}
	}
	return false
}

// imageFormatRows prints rows as JSON lines (format "json") or through a Go template.
func imageFormatRows[T any](a *app, format string, rows []T) error {
	if format == "json" {
		for _, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s\n", b)
		}
		return nil
	}
	tmpl, err := template.New("format").Funcs(template.FuncMap{"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}}).Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	for _, r := range rows {
		if err := tmpl.Execute(a.stdout, r); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(a.stdout)
	}
	return nil
}

// ---- inspect ----

type imageInspectJSON struct {
	ID           string             `json:"Id"`
	RepoTags     []string           `json:"RepoTags"`
	RepoDigests  []string           `json:"RepoDigests"`
	Parent       string             `json:"Parent"`
	Comment      string             `json:"Comment"`
	Created      string             `json:"Created"`
	Author       string             `json:"Author"`
	Config       imageInspectConfig `json:"Config"`
	Architecture string             `json:"Architecture"`
	Variant      string             `json:"Variant,omitempty"`
	Os           string             `json:"Os"`
	Size         int64              `json:"Size"`
	RootFS       imageInspectRootFS `json:"RootFS"`
	History      []imageInspectHist `json:"History"`
	Metadata     map[string]any     `json:"Metadata"`
	GraphDriver  map[string]any     `json:"GraphDriver"`
	Descriptor   *imageInspectDescr `json:"Descriptor,omitempty"`
}

type imageInspectDescr struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

type imageInspectConfig struct {
	Env          []string             `json:"Env"`
	Cmd          []string             `json:"Cmd"`
	Entrypoint   []string             `json:"Entrypoint"`
	WorkingDir   string               `json:"WorkingDir"`
	User         string               `json:"User"`
	ExposedPorts map[string]struct{}  `json:"ExposedPorts,omitempty"`
	Volumes      map[string]struct{}  `json:"Volumes"`
	Labels       map[string]string    `json:"Labels"`
	StopSignal   string               `json:"StopSignal,omitempty"`
	Healthcheck  *storage.Healthcheck `json:"Healthcheck,omitempty"` // same JSON shape as Docker's
	Shell        []string             `json:"Shell,omitempty"`
	OnBuild      []string             `json:"OnBuild"`
	ArgsEscaped  bool                 `json:"ArgsEscaped,omitempty"`
}

type imageInspectRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

type imageInspectHist struct {
	Created    string `json:"Created"`
	CreatedBy  string `json:"CreatedBy,omitempty"`
	Comment    string `json:"Comment,omitempty"`
	Author     string `json:"Author,omitempty"`
	EmptyLayer bool   `json:"EmptyLayer,omitempty"`
}

func imageInspectOf(img storage.Image) imageInspectJSON {
	c := img.Config
	out := imageInspectJSON{
		ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Parent: img.Parent,
		Created: img.Created.UTC().Format(time.RFC3339Nano), Author: img.Author,
		Architecture: img.Architecture, Variant: img.Variant, Os: img.OS, Size: img.Size,
		RootFS:   imageInspectRootFS{Type: "layers", Layers: img.Layers},
		Metadata: map[string]any{"LastTagTime": "0001-01-01T00:00:00Z"},
		GraphDriver: map[string]any{"Name": "overlay", "Data": map[string]string{
			"LowerDir": strings.Join(img.ChainIDs, ":")}},
		Config: imageInspectConfig{Env: c.Env, Cmd: c.Cmd, Entrypoint: c.Entrypoint, WorkingDir: c.WorkingDir, User: c.User,
			Labels: c.Labels, StopSignal: c.StopSignal, Shell: c.Shell, OnBuild: c.OnBuild, ArgsEscaped: c.ArgsEscaped},
	}
	if img.ManifestDigest != "" {
		out.Descriptor = &imageInspectDescr{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: img.ManifestDigest}
	}
	if out.RepoTags == nil {
		out.RepoTags = []string{}
	}
	if out.RepoDigests == nil {
		out.RepoDigests = []string{}
	}
	if out.RootFS.Layers == nil {
		out.RootFS.Layers = []string{}
	}
	for _, p := range c.ExposedPorts {
		if out.Config.ExposedPorts == nil {
			out.Config.ExposedPorts = map[string]struct{}{}
		}
		out.Config.ExposedPorts[p] = struct{}{}
	}
	for _, v := range c.Volumes {
		if out.Config.Volumes == nil {
			out.Config.Volumes = map[string]struct{}{}
		}
		out.Config.Volumes[v] = struct{}{}
	}
	if h := c.Healthcheck; h != nil {
		hc := *h
		out.Config.Healthcheck = &hc
	}
	for _, h := range img.History {
		if h.Comment != "" && out.Comment == "" {
			out.Comment = h.Comment
		}
		out.History = append(out.History, imageInspectHist{Created: h.Created.UTC().Format(time.RFC3339Nano), CreatedBy: h.CreatedBy, Comment: h.Comment, Author: h.Author, EmptyLayer: h.EmptyLayer})
	}
	return out
}

func imageInspectCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imageWithStore(a, func(s *storage.Store) error {
				var out []imageInspectJSON
				var errs []error
				for _, r := range args {
					img, err := s.Resolve(cmd.Context(), r)
					if err != nil {
						errs = append(errs, fmt.Errorf("no such image: %s: %w", r, err))
						continue
					}
					out = append(out, imageInspectOf(img))
				}
				if format != "" && format != "json" {
					if err := imageFormatRows(a, format, out); err != nil {
						return err
					}
				} else {
					if out == nil {
						out = []imageInspectJSON{}
					}
					b, _ := json.MarshalIndent(out, "", "    ")
					fmt.Fprintf(a.stdout, "%s\n", b)
				}
				return errors.Join(errs...)
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "Format the output using a Go template, or json")
	return cmd
}

// ---- tag, rm, prune ----

func imageTagCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imageWithStore(a, func(s *storage.Store) error {
				return s.Tag(cmd.Context(), args[0], args[1])
			})
		},
	}
}

func imagePrintRemoved(a *app, res storage.RemoveResult) {
	for _, u := range res.Untagged {
		fmt.Fprintf(a.stdout, "Untagged: %s\n", u)
	}
	for _, d := range res.Deleted {
		fmt.Fprintf(a.stdout, "Deleted: %s\n", d)
	}
}

func imageRmCmd(a *app, use string) *cobra.Command {
	var force, noPrune bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imageWithStore(a, func(s *storage.Store) error {
				var errs []error
				for _, r := range args {
					// InUse: nil until the runtime can say which containers use an image; the
					// store itself refuses images under a container's writable layer.
					res, err := s.Remove(cmd.Context(), r, storage.RemoveOptions{Force: force, NoPrune: noPrune})
					imagePrintRemoved(a, res)
					if err != nil {
						errs = append(errs, err)
					}
				}
				return errors.Join(errs...)
			})
		},
	}
	if use == "rm" {
		cmd.Aliases = []string{"remove"}
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "Do not delete unreferenced layers")
	return cmd
}

func imageConfirm(a *app, msg string) bool {
	fmt.Fprintf(a.stdout, "%s Are you sure you want to continue? [y/N] ", msg)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}

func imagePruneCmd(a *app) *cobra.Command {
	var all, force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(filters) > 0 {
				return fmt.Errorf("--filter is not supported by berth image prune")
			}
			msg := "WARNING! This will remove all dangling images."
			if all {
				msg = "WARNING! This will remove all images without at least one container associated to them."
			}
			if !force && !imageConfirm(a, msg) {
				return nil
			}
			return imageWithStore(a, func(s *storage.Store) error {
				// The build cache's intermediate images stay until `berth builder prune`.
				cached, err := build.CachedImages(s.Root(), "")
				if err != nil {
					return err
				}
				res, err := s.Prune(cmd.Context(), all, storage.RemoveOptions{InUse: func(id string) bool { return cached[id] }})
				if len(res.Untagged)+len(res.Deleted) > 0 {
					fmt.Fprintln(a.stdout, "Deleted Images:")
					for _, u := range res.Untagged {
						fmt.Fprintf(a.stdout, "untagged: %s\n", u)
					}
					for _, d := range res.Deleted {
						fmt.Fprintf(a.stdout, "deleted: %s\n", d)
					}
					fmt.Fprintln(a.stdout)
				}
				fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", imageSize(res.SpaceReclaimed))
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "Provide filter values (not supported)")
	return cmd
}

// ---- history ----

type imageHistoryRow struct {
	ID           string `json:"ID"`
	CreatedAt    string `json:"CreatedAt"`
	CreatedSince string `json:"CreatedSince"`
	CreatedBy    string `json:"CreatedBy"`
	Size         string `json:"Size"`
	Comment      string `json:"Comment"`
}

func imageHistoryCmd(a *app) *cobra.Command {
	var noTrunc, quiet, human bool
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imageWithStore(a, func(s *storage.Store) error {
				img, err := s.Resolve(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				var rows []imageHistoryRow
				layer := 0
				for _, h := range img.History {
					size := int64(0)
					if !h.EmptyLayer && layer < len(img.LayerSizes) {
						size = img.LayerSizes[layer]
						layer++
					}
					sz := imageSize(size)
					if !human {
						sz = fmt.Sprint(size)
					}
					by := h.CreatedBy
					if !noTrunc && len(by) > 45 {
						by = by[:44] + "…"
					}
					rows = append(rows, imageHistoryRow{ID: "<missing>", CreatedAt: h.Created.Format(time.RFC3339), CreatedSince: imageAgo(h.Created), CreatedBy: by, Size: sz, Comment: h.Comment})
				}
				for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
					rows[i], rows[j] = rows[j], rows[i]
				}
				if len(rows) > 0 {
					rows[0].ID = img.ID
					if !noTrunc {
						rows[0].ID = imageShortID(img.ID)
					}
				}
				if quiet {
					for _, r := range rows {
						fmt.Fprintln(a.stdout, r.ID)
					}
					return nil
				}
				if format != "" && format != "table" {
					return imageFormatRows(a, format, rows)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.CreatedSince, r.CreatedBy, r.Size, r.Comment)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	cmd.Flags().BoolVarP(&human, "human", "H", true, "Print sizes in human readable format")
	cmd.Flags().StringVar(&format, "format", "", "Output format: table, json, or a Go template")
	return cmd
}

// ---- import, load, save ----

func imageImportCmd(a *app) *cobra.Command {
	var changes []string
	var message string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|-|DIRECTORY [REPOSITORY[:TAG]]",
		Short: "Import a root filesystem tarball (or directory) as a one-layer image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt := storage.ImportOptions{Changes: changes, Message: message}
			if len(args) == 2 {
				opt.Ref = args[1]
			}
			return imageWithStore(a, func(s *storage.Store) error {
				var img storage.Image
				var err error
				src := args[0]
				if src == "-" {
					img, err = s.Import(cmd.Context(), a.stdin, opt)
				} else if fi, serr := os.Stat(src); serr != nil {
					return fmt.Errorf("import: %w", serr)
				} else if fi.IsDir() {
					img, err = s.ImportDir(cmd.Context(), src, opt)
				} else {
					f, oerr := os.Open(src)
					if oerr != nil {
						return fmt.Errorf("import: %w", oerr)
					}
					defer f.Close()
					img, err = s.Import(cmd.Context(), f, opt)
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, img.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, ...)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "Set a commit message for the imported image")
	return cmd
}

func imageIsTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// imageProgress renders per-layer progress as plain lines (byte counts only on a terminal).
func imageProgress(a *app, quiet bool) func(storage.Progress) {
	if quiet || a.opts.Progress == "quiet" {
		return nil
	}
	tty := imageIsTerminal(a.stdout) && a.opts.Progress != "plain"
	var mu sync.Mutex // layers report from several goroutines
	return func(p storage.Progress) {
		mu.Lock()
		defer mu.Unlock()
		switch p.Status {
		case "Downloading", "Pushing":
			if !tty || p.Total <= 0 {
				return
			}
			fmt.Fprintf(a.stdout, "%s: %s %s/%s\n", p.ID, p.Status, imageSize(p.Current), imageSize(p.Total))
		default:
			fmt.Fprintf(a.stdout, "%s: %s\n", p.ID, p.Status)
		}
	}
}

func imageLoadCmd(a *app) *cobra.Command {
	var input, platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a Docker save archive, an OCI archive or an OCI layout directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" && imageIsTerminal(a.stdin) {
				return fmt.Errorf("requested load from stdin, but stdin is empty: use -i FILE or pipe an archive")
			}
			return imageWithStore(a, func(s *storage.Store) error {
				imgs, err := s.Load(cmd.Context(), a.stdin, input, storage.LoadOptions{Platform: platform})
				if err != nil {
					return err
				}
				for _, img := range imgs {
					if len(img.RepoTags) == 0 {
						fmt.Fprintf(a.stdout, "Loaded image ID: %s\n", img.ID)
					}
					for _, t := range img.RepoTags {
						fmt.Fprintf(a.stdout, "Loaded image: %s\n", t)
					}
				}
				_ = quiet
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file (or OCI layout directory), instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	cmd.Flags().StringVar(&platform, "platform", "", "Platform to load from a multi-platform archive (default: host)")
	return cmd
}

func imageSaveCmd(a *app) *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imageWithStore(a, func(s *storage.Store) error {
				if output == "" || output == "-" {
					if imageIsTerminal(a.stdout) {
						return fmt.Errorf("cowardly refusing to save to a terminal: use -o FILE or redirect")
					}
					return s.Save(cmd.Context(), a.stdout, args, storage.SaveFormat(format))
				}
				dir := filepath.Dir(output)
				f, err := os.CreateTemp(dir, ".berth-save-")
				if err != nil {
					return fmt.Errorf("save: %w", err)
				}
				defer os.Remove(f.Name())
				defer f.Close()
				bw := bufio.NewWriterSize(f, 1<<20)
				if err := s.Save(cmd.Context(), bw, args, storage.SaveFormat(format)); err != nil {
					return err
				}
				if err := bw.Flush(); err != nil {
					return err
				}
				if err := f.Sync(); err != nil {
					return err
				}
				if err := f.Chmod(0o644); err != nil {
					return err
				}
				return os.Rename(f.Name(), output)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	cmd.Flags().StringVar(&format, "format", "docker", "Archive format: docker (also an OCI layout) or oci")
	return cmd
}

// ---- registries ----

func imagePullCmd(a *app) *cobra.Command {
	var platform, authFile string
	var quiet, insecure bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imageWithStore(a, func(s *storage.Store) error {
				ref := args[0]
				n, err := storage.NormalizeRef(ref)
				if err != nil {
					return err
				}
				repo, tag := imageSplitTag(storage.FamiliarRef(n))
				if !quiet {
					fmt.Fprintf(a.stdout, "%s: Pulling from %s\n", tag, repo)
				}
				var downloaded atomic.Bool
				show := imageProgress(a, quiet)
				progress := func(p storage.Progress) {
					if p.Status == "Pull complete" {
						downloaded.Store(true)
					}
					if show != nil {
						show(p)
					}
				}
				img, err := s.Pull(cmd.Context(), ref, storage.PullOptions{Platform: platform, RegistryOptions: storage.RegistryOptions{
					Insecure: insecure, AuthFile: authFile, Progress: progress}})
				if err != nil {
					return err
				}
				if !quiet {
					if len(img.RepoDigests) > 0 {
						_, d := imageSplitTag(img.RepoDigests[len(img.RepoDigests)-1])
						fmt.Fprintf(a.stdout, "Digest: %s\n", d)
					}
					if downloaded.Load() {
						fmt.Fprintf(a.stdout, "Status: Downloaded newer image for %s\n", storage.FamiliarRef(n))
					} else {
						fmt.Fprintf(a.stdout, "Status: Image is up to date for %s\n", storage.FamiliarRef(n))
					}
				}
				fmt.Fprintln(a.stdout, n)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform (os/arch[/variant]); default: the host's")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "Allow plain HTTP to this registry (always allowed for localhost)")
	cmd.Flags().StringVar(&authFile, "authfile", "", "Docker config file with credentials (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	return cmd
}

func imagePushCmd(a *app) *cobra.Command {
	var authFile string
	var quiet, insecure bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return imageWithStore(a, func(s *storage.Store) error {
				n, err := storage.NormalizeRef(args[0])
				if err != nil {
					return err
				}
				_, tag := imageSplitTag(storage.FamiliarRef(n))
				md, err := s.Push(cmd.Context(), "", args[0], storage.PushOptions{RegistryOptions: storage.RegistryOptions{
					Insecure: insecure, AuthFile: authFile, Progress: imageProgress(a, quiet)}})
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s: digest: %s\n", tag, md)
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "Allow plain HTTP to this registry (always allowed for localhost)")
	cmd.Flags().StringVar(&authFile, "authfile", "", "Docker config file with credentials (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	return cmd
}

func imageLoginCmd(a *app) *cobra.Command {
	var user, password, authFile string
	var passwordStdin, insecure bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry (credentials are stored in Docker's config.json format)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := "docker.io"
			if len(args) == 1 {
				server = imageServer(args[0])
			}
			if passwordStdin {
				if password != "" {
					return fmt.Errorf("--password and --password-stdin are mutually exclusive")
				}
				b, err := io.ReadAll(a.stdin)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			r := bufio.NewReader(a.stdin)
			if user == "" {
				fmt.Fprint(a.stdout, "Username: ")
				l, _ := r.ReadString('\n')
				user = strings.TrimSpace(l)
			}
			if password == "" {
				fmt.Fprint(a.stdout, "Password: ")
				if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					b, err := term.ReadPassword(int(f.Fd()))
					fmt.Fprintln(a.stdout)
					if err != nil {
						return err
					}
					password = string(b)
				} else {
					l, _ := r.ReadString('\n')
					password = strings.TrimRight(l, "\r\n")
				}
			}
			if user == "" || password == "" {
				return fmt.Errorf("login: username and password are required")
			}
			if err := storage.Login(cmd.Context(), server, user, password, storage.RegistryOptions{Insecure: insecure, AuthFile: authFile}); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "Username")
	cmd.Flags().StringVarP(&password, "password", "p", "", "Password")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "Take the password from stdin")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "Allow plain HTTP to this registry (always allowed for localhost)")
	cmd.Flags().StringVar(&authFile, "authfile", "", "Docker config file for credentials (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	return cmd
}

// imageServer accepts "host", "https://host" or "https://host/v1/" like docker login.
func imageServer(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	if s == "index.docker.io" || s == "registry-1.docker.io" {
		return "docker.io"
	}
	return s
}

func imageLogoutCmd(a *app) *cobra.Command {
	var authFile string
	cmd := &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := "docker.io"
			if len(args) == 1 {
				server = imageServer(args[0])
			}
			if err := storage.Logout(server, storage.RegistryOptions{AuthFile: authFile}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", server)
			return nil
		},
	}
	cmd.Flags().StringVar(&authFile, "authfile", "", "Docker config file for credentials (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	return cmd
}
