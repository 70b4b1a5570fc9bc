package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/convert"
)

// convertOptions are the flags of `berth convert`.
type convertOptions struct {
	to            string
	output        string
	namespace     string
	format        string
	exposePorts   string
	allowHostPath bool
	volumeSize    string
	strict        bool
	waitImage     string
	kubectlImage  string
}

// convertFiles reads the secret and config files a project names.
type convertFiles struct{}

func (convertFiles) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// addConvertCommand registers `berth convert`.
func addConvertCommand(root *cobra.Command, a *app) {
	var o convertOptions
	cmd := &cobra.Command{
		Use:   "convert --to kubernetes [-o DIR]",
		Short: "Convert the project into Kubernetes manifests",
		Long: `Load the project as "up" does (files, .env, profiles, interpolation) and write Kubernetes
objects that "kubectl apply -f" accepts: a multi-document YAML stream on stdout, or one file
per object in DIR with -o.

  service            Deployment (replicas from scale/deploy.replicas); a StatefulSet when it
                     has more than one replica and a named volume; a Job when it does not
                     restart and another service waits for it to complete
  ports, expose      a ClusterIP Service named after the service (headless when it has no
                     ports), so its DNS name keeps working; one more Service per alias;
                     --expose-ports adds a LoadBalancer or NodePort Service for published ports
  volumes            named volumes: PersistentVolumeClaims (size from the volume label
                     berth.dev/size or --volume-size, class from berth.dev/storage-class);
                     tmpfs: memory emptyDirs; bind mounts: a warning, or hostPath with
                     --allow-hostpath
  environment        env; with env_file, a ConfigMap
  secrets, configs   Secrets and ConfigMaps mounted at their targets
  healthcheck        readiness and liveness probes
  depends_on         init containers that wait for the dependency's Service or Job
  networks           NetworkPolicies: only services sharing a network talk; internal
                     networks have no egress but DNS
  build              the image name; push the image first (berth push)

Whatever Kubernetes cannot express is reported on stderr as a warning that names the service
and key; --strict makes warnings an error. Notes list what to do before applying.`,
		Example: `  berth convert --to kubernetes | kubectl apply -f -
  berth convert --to kubernetes -o k8s/ --namespace shop --expose-ports=NodePort
  berth --profile debug convert --to kubernetes --format json --strict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt, err := o.options()
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			p, err := a.loadProject(cmd.Context())
			if err != nil {
				return err
			}
			res, err := convert.Convert(p, convertFiles{}, opt)
			if res != nil {
				for _, n := range res.Notes {
					fmt.Fprintf(a.stderr, "note: %s\n", n)
				}
				if err == nil {
					for _, w := range res.Warnings {
						fmt.Fprintf(a.stderr, "warning: %s\n", w)
					}
				}
			}
			if errors.Is(err, convert.ErrStrict) {
				return &exitError{code: 1, err: fmt.Errorf("--strict: %w", err)}
			}
			if errors.Is(err, convert.ErrInvalid) {
				return &exitError{code: 1, err: err}
			}
			if err != nil {
				return err
			}
			if o.output != "" {
				return convert.WriteDir(o.output, res.Objects, o.format)
			}
			b, err := convert.Marshal(res.Objects, o.format)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(b)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "Target platform: kubernetes (required)")
	f.StringVarP(&o.output, "output", "o", "", "Write one file per object into this directory instead of stdout")
	f.StringVarP(&o.namespace, "namespace", "n", "", "Namespace written into every object (default: kubectl's)")
	f.StringVar(&o.format, "format", convert.FormatYAML, "Output format: yaml or json")
	f.StringVar(&o.exposePorts, "expose-ports", "", "Publish published ports through a LoadBalancer or NodePort Service (--expose-ports alone: LoadBalancer)")
	f.Lookup("expose-ports").NoOptDefVal = convert.ExposeLoadBalancer
	f.BoolVar(&o.allowHostPath, "allow-hostpath", false, "Map bind mounts to hostPath volumes")
	f.StringVar(&o.volumeSize, "volume-size", convert.DefaultVolumeSize, "Size of a volume's claim when its berth.dev/size label does not set one")
	f.BoolVar(&o.strict, "strict", false, "Fail when anything cannot be converted without loss")
	f.StringVar(&o.waitImage, "wait-image", convert.DefaultWaitImage, "Image of the init containers that wait for a dependency's Service")
	f.StringVar(&o.kubectlImage, "kubectl-image", convert.DefaultKubectlImage, "Image of the init containers that wait for a dependency's Job")
	root.AddCommand(cmd)
}

// options checks the flags and turns them into convert.Options.
func (o *convertOptions) options() (convert.Options, error) {
	switch strings.ToLower(o.to) {
	case "kubernetes", "k8s":
	case "":
		return convert.Options{}, errors.New("--to is required: use --to kubernetes")
	default:
		return convert.Options{}, fmt.Errorf("--to %q: only kubernetes is supported", o.to)
	}
	switch o.format {
	case convert.FormatYAML, convert.FormatJSON:
	default:
		return convert.Options{}, fmt.Errorf("--format %q: use yaml or json", o.format)
	}
	var expose string
	switch strings.ToLower(o.exposePorts) {
	case "":
	case "loadbalancer", "lb":
		expose = convert.ExposeLoadBalancer
	case "nodeport":
		expose = convert.ExposeNodePort
	default:
		return convert.Options{}, fmt.Errorf("--expose-ports %q: use LoadBalancer or NodePort", o.exposePorts)
	}
	return convert.Options{
		Namespace:     o.namespace,
		ExposePorts:   expose,
		AllowHostPath: o.allowHostPath,
		VolumeSize:    o.volumeSize,
		Strict:        o.strict,
		WaitImage:     o.waitImage,
		KubectlImage:  o.kubectlImage,
	}, nil
}
