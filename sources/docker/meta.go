package docker

import (
	"context"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/vigilhq/vigil/internal/engineapi"
	"github.com/vigilhq/vigil/pipeline"
)

// Label names of Prometheus's Docker discovery, plus the log stream label
// Promtail's Docker target adds before relabeling.
const (
	metaPrefix        = "__meta_docker_"
	metaContainerID   = metaPrefix + "container_id"
	metaContainerName = metaPrefix + "container_name"
	metaNetworkMode   = metaPrefix + "container_network_mode"
	metaContainerLbl  = metaPrefix + "container_label_"
	metaLogStream     = metaPrefix + "container_log_stream"
	metaNetwork       = metaPrefix + "network_"
	metaNetworkIP     = metaNetwork + "ip"
	metaPortPrivate   = metaPrefix + "port_private"
	metaPortPublic    = metaPrefix + "port_public"
	metaPortPublicIP  = metaPrefix + "port_public_ip"
	addressLabel      = "__address__"
)

// meta is what a container's entries carry. It is replaced on rename.
type meta struct {
	tty     bool
	logPath string // the json-file log read from disk; "": read through the API
	tenant  string
	// Labels per stream after relabeling; a stream relabeling dropped has
	// keep false, and its lines are skipped (their cursor still moves).
	stdout, stderr         pipeline.Labels
	keepStdout, keepStderr bool
}

// labelsFor returns the labels of a stream's entries, and false when
// relabeling dropped the stream.
func (m *meta) labelsFor(stream byte) (pipeline.Labels, bool) {
	if stream == streamStderr {
		return m.stderr, m.keepStderr
	}
	return m.stdout, m.keepStdout
}

// networks caches the Engine's networks for the __meta_docker_network_*
// labels. It is read again on each container list and when a container
// names a network it does not know.
type networks struct {
	mu   sync.Mutex
	byID map[string]network.Summary
}

func (n *networks) refresh(ctx context.Context, cli *engineapi.Client) error {
	res, err := cli.NetworkList(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]network.Summary, len(res))
	for _, s := range res {
		m[s.ID] = s
	}
	n.mu.Lock()
	n.byID = m
	n.mu.Unlock()
	return nil
}

func (n *networks) get(ctx context.Context, cli *engineapi.Client, id string) (network.Summary, bool) {
	n.mu.Lock()
	s, ok := n.byID[id]
	n.mu.Unlock()
	if ok || id == "" {
		return s, ok
	}
	if n.refresh(ctx, cli) != nil {
		return s, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok = n.byID[id]
	return s, ok
}

// discoveryLabels builds the labels Prometheus's Docker discovery gives
// the container's first target: the container's own, those of its first
// network by name (match_first_network), and of its lowest exposed TCP
// port. A container sharing another's network (network_mode
// container:<id>) gets that container's network. Promtail keeps the first
// target of each container too; where Prometheus's order depends on map
// iteration, vigil sorts, so the labels are stable.
func (s *Source) discoveryLabels(ctx context.Context, cli *engineapi.Client, ins container.InspectResponse) map[string]string {
	m := map[string]string{
		metaContainerID:   ins.ID,
		metaContainerName: ins.Name,
	}
	var mode container.NetworkMode
	if ins.HostConfig != nil {
		mode = ins.HostConfig.NetworkMode
		m[metaNetworkMode] = string(mode)
	}
	if ins.Config != nil {
		for k, v := range ins.Config.Labels {
			m[metaContainerLbl+sanitize(k)] = v
		}
	}
	var nets map[string]*network.EndpointSettings
	var ports network.PortMap
	if ins.NetworkSettings != nil {
		nets, ports = ins.NetworkSettings.Networks, ins.NetworkSettings.Ports
	}
	// Follow network_mode container:<id> a few hops, as Prometheus does.
	for hop := 0; len(nets) == 0 && mode.IsContainer() && hop < 4; hop++ {
		res, err := cli.ContainerInspect(ctx, mode.ConnectedContainer())
		if err != nil || res.NetworkSettings == nil || res.HostConfig == nil {
			break
		}
		nets, mode = res.NetworkSettings.Networks, res.HostConfig.NetworkMode
	}
	names := make([]string, 0, len(nets))
	for name, ep := range nets {
		if ep != nil {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return m
	}
	sort.Strings(names)
	ep := nets[names[0]]
	ip := ""
	if ep.IPAddress.IsValid() {
		ip = ep.IPAddress.String()
	}
	m[metaNetworkIP] = ip
	if n, ok := s.networks.get(ctx, cli, ep.NetworkID); ok {
		m[metaNetwork+"id"] = n.ID
		m[metaNetwork+"name"] = n.Name
		m[metaNetwork+"scope"] = n.Scope
		m[metaNetwork+"internal"] = strconv.FormatBool(n.Internal)
		m[metaNetwork+"ingress"] = strconv.FormatBool(n.Ingress)
		for k, v := range n.Labels {
			m[metaNetwork+"label_"+sanitize(k)] = v
		}
	}
	// The lowest TCP port, with its first host binding.
	var private uint16
	var bindings []network.PortBinding
	for p, b := range ports {
		if p.Proto() != network.TCP {
			continue
		}
		if private == 0 || p.Num() < private {
			private, bindings = p.Num(), b
		}
	}
	switch {
	case private != 0:
		m[metaPortPrivate] = strconv.Itoa(int(private))
		if len(bindings) > 0 && bindings[0].HostPort != "" && bindings[0].HostPort != "0" {
			m[metaPortPublic] = bindings[0].HostPort
			if bindings[0].HostIP.IsValid() {
				m[metaPortPublicIP] = bindings[0].HostIP.String()
			}
		}
		m[addressLabel] = net.JoinHostPort(ip, strconv.Itoa(int(private)))
	case mode.IsHost():
		m[addressLabel] = s.cfg.hostNetworkingHost
	default:
		m[addressLabel] = net.JoinHostPort(ip, strconv.Itoa(s.cfg.port))
	}
	return m
}

// buildMeta turns an inspected container into its label sets: the
// discovery labels plus the static labels and the default labels, then
// relabel_configs once per stream (with __meta_docker_container_log_stream
// set, as Promtail does), then the __ labels are removed.
func (s *Source) buildMeta(ctx context.Context, cli *engineapi.Client, ins container.InspectResponse) *meta {
	name := strings.TrimPrefix(ins.Name, "/")
	m := s.discoveryLabels(ctx, cli, ins)
	for k, v := range s.cfg.labels {
		m[k] = v
	}
	if s.cfg.containerLabel {
		m["container"] = name
	}
	md := &meta{tenant: s.cfg.defaultTenant}
	if ins.Config != nil {
		md.tty = ins.Config.Tty
		if s.cfg.tenantLabel != "" {
			if v := ins.Config.Labels[s.cfg.tenantLabel]; v != "" {
				md.tenant = v
			}
		}
	}
	for _, st := range []struct {
		name   string
		labels *pipeline.Labels
		keep   *bool
	}{{"stdout", &md.stdout, &md.keepStdout}, {"stderr", &md.stderr, &md.keepStderr}} {
		m[metaLogStream] = st.name
		if s.cfg.streamLabel {
			m["stream"] = st.name
		}
		ls, keep := s.cfg.relabel.Apply(pipeline.LabelsFromMap(m))
		if !keep {
			continue
		}
		out := make(pipeline.Labels, 0, len(ls))
		for _, l := range ls {
			if !strings.HasPrefix(l.Name, "__") && l.Value != "" {
				out = append(out, l)
			}
		}
		*st.labels, *st.keep = out, true
	}
	if !md.keepStdout && !md.keepStderr {
		s.log.Debug("container dropped by relabel_configs", "source", s.name, "container", name)
		return nil
	}
	return md
}
