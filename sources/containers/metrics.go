package containers

import (
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// family is one of cAdvisor's metric families: its name, help text and
// type exactly as cAdvisor exposes them.
type family struct {
	desc    *prometheus.Desc
	counter bool
}

func newFamily(name, help string, counter bool) *family {
	return &family{desc: prometheus.NewDesc(name, help, nil, nil), counter: counter}
}

// The families vigil serves, with cAdvisor's help strings (v0.49+). Each
// container's series carry that container's own label set (id, name,
// image, tenant, container_label_*), so the descriptors hold no labels;
// see sample.
var (
	famLastSeen   = newFamily("container_last_seen", "Last time a container was seen by the exporter", false)
	famStartTime  = newFamily("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", false)
	famHealth     = newFamily("container_health_state", "The result of the container's health check", false)
	famCPUUsage   = newFamily("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", true)
	famCPUUser    = newFamily("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", true)
	famCPUSystem  = newFamily("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", true)
	famCFSPeriods = newFamily("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", true)
	famCFSThrPer  = newFamily("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", true)
	famCFSThrSec  = newFamily("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", true)
	famMemUsage   = newFamily("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", false)
	famMemWS      = newFamily("container_memory_working_set_bytes", "Current working set in bytes.", false)
	famMemRSS     = newFamily("container_memory_rss", "Size of RSS in bytes.", false)
	famMemCache   = newFamily("container_memory_cache", "Number of bytes of page cache memory.", false)
	famMemSwap    = newFamily("container_memory_swap", "Container swap usage in bytes.", false)
	famMemMax     = newFamily("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", false)
	famMemFailcnt = newFamily("container_memory_failcnt", "Number of memory usage hits limits", true)
	famOOM        = newFamily("container_oom_events_total", "Count of out of memory events observed for the container", true)
	famSpecMem    = newFamily("container_spec_memory_limit_bytes", "Memory limit for the container.", false)
	famSpecPeriod = newFamily("container_spec_cpu_period", "CPU period of the container.", false)
	famSpecQuota  = newFamily("container_spec_cpu_quota", "CPU quota of the container.", false)
	famSpecShares = newFamily("container_spec_cpu_shares", "CPU share of the container.", false)
	famFsReads    = newFamily("container_fs_reads_bytes_total", "Cumulative count of bytes read", true)
	famFsWrites   = newFamily("container_fs_writes_bytes_total", "Cumulative count of bytes written", true)
	famBlkio      = newFamily("container_blkio_device_usage_total", "Blkio Device bytes usage", true)
	famNetRxBytes = newFamily("container_network_receive_bytes_total", "Cumulative count of bytes received", true)
	famNetRxPkts  = newFamily("container_network_receive_packets_total", "Cumulative count of packets received", true)
	famNetRxDrop  = newFamily("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", true)
	famNetRxErrs  = newFamily("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", true)
	famNetTxBytes = newFamily("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", true)
	famNetTxPkts  = newFamily("container_network_transmit_packets_total", "Cumulative count of packets transmitted", true)
	famNetTxDrop  = newFamily("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", true)
	famNetTxErrs  = newFamily("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", true)

	scrapeErrorDesc  = prometheus.NewDesc("container_scrape_error", "1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
	machineLabels    = []string{"machine_id", "system_uuid", "boot_id"}
	machineCoresDesc = prometheus.NewDesc("machine_cpu_cores", "Number of logical CPU cores.", machineLabels, nil)
	machineMemDesc   = prometheus.NewDesc("machine_memory_bytes", "Amount of memory installed on the machine.", machineLabels, nil)
)

// sample is one series' value in one scrape. It implements
// prometheus.Metric with label pairs built once per container (not once
// per series per scrape, as prometheus.MustNewConstMetric would), which is
// most of what keeps a scrape cheap.
type sample struct {
	fam    *family
	labels []*dto.LabelPair
	value  float64
}

func (s *sample) Desc() *prometheus.Desc { return s.fam.desc }

func (s *sample) Write(m *dto.Metric) error {
	m.Label = s.labels
	if s.fam.counter {
		m.Counter = &dto.Counter{Value: &s.value}
	} else {
		m.Gauge = &dto.Gauge{Value: &s.value}
	}
	return nil
}

// emitter hands samples to the registry. Samples are allocated in chunks
// that are never reused: the registry may still read a sample after
// Collect returns.
type emitter struct {
	ch    chan<- prometheus.Metric
	chunk []sample
	n     int // samples emitted
}

const chunkSize = 512

func (e *emitter) emit(f *family, labels []*dto.LabelPair, v float64) {
	if len(e.chunk) == cap(e.chunk) {
		e.chunk = make([]sample, 0, chunkSize)
	}
	e.chunk = append(e.chunk, sample{fam: f, labels: labels, value: v})
	e.ch <- &e.chunk[len(e.chunk)-1]
	e.n++
}

// labelSet is a container's label pairs: the base set shared by all its
// series, and the base set merged with each extra label combination,
// cached so a steady container builds no label pairs at all.
type labelSet struct {
	base    []*dto.LabelPair
	cpu     []*dto.LabelPair             // cpu="total"
	ifaces  map[string][]*dto.LabelPair  // interface=...
	devices map[devKey][]*dto.LabelPair  // device=...
	ops     map[ioOpKey][]*dto.LabelPair // device, major, minor, operation
	names   func(devKey) (string, bool)  // device names
}

type ioOpKey struct {
	dev devKey
	op  string
}

func pair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: &name, Value: &value}
}

// newLabelSet sorts base by name.
func newLabelSet(base map[string]string, names func(devKey) (string, bool)) *labelSet {
	ls := &labelSet{
		ifaces:  map[string][]*dto.LabelPair{},
		devices: map[devKey][]*dto.LabelPair{},
		ops:     map[ioOpKey][]*dto.LabelPair{},
		names:   names,
	}
	for k, v := range base {
		ls.base = append(ls.base, pair(k, v))
	}
	sort.Slice(ls.base, func(i, j int) bool { return ls.base[i].GetName() < ls.base[j].GetName() })
	ls.cpu = ls.with(pair("cpu", "total"))
	return ls
}

// with returns base merged with extra, in label name order.
func (ls *labelSet) with(extra ...*dto.LabelPair) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(ls.base)+len(extra))
	out = append(out, ls.base...)
	out = append(out, extra...)
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func (ls *labelSet) iface(name string) []*dto.LabelPair {
	l, ok := ls.ifaces[name]
	if !ok {
		if len(ls.ifaces) > 256 { // interfaces come and go; keep the cache bounded
			clear(ls.ifaces)
		}
		l = ls.with(pair("interface", name))
		ls.ifaces[name] = l
	}
	return l
}

func (ls *labelSet) device(d devKey) []*dto.LabelPair {
	l, ok := ls.devices[d]
	if !ok {
		name, _ := ls.names(d)
		l = ls.with(pair("device", name))
		ls.devices[d] = l
	}
	return l
}

func (ls *labelSet) op(d devKey, op string) []*dto.LabelPair {
	k := ioOpKey{d, op}
	l, ok := ls.ops[k]
	if !ok {
		name, _ := ls.names(d)
		l = ls.with(pair("device", name),
			pair("major", strconv.FormatUint(uint64(d.major), 10)),
			pair("minor", strconv.FormatUint(uint64(d.minor), 10)),
			pair("operation", op))
		ls.ops[k] = l
	}
	return l
}

// emitStats sends one cgroup's series, with cAdvisor's conditions: the
// CFS series and the quota only when a quota is set.
func (e *emitter) emitStats(ls *labelSet, st *stats) {
	b := ls.base
	e.emit(famCPUUsage, ls.cpu, st.cpuTotal)
	e.emit(famCPUUser, b, st.cpuUser)
	e.emit(famCPUSystem, b, st.cpuSystem)
	if st.quota > 0 {
		e.emit(famCFSPeriods, b, float64(st.periods))
		e.emit(famCFSThrPer, b, float64(st.throttledPeriods))
		e.emit(famCFSThrSec, b, st.throttled)
	}
	e.emit(famMemUsage, b, float64(st.memUsage))
	e.emit(famMemWS, b, float64(st.memWorkingSet))
	e.emit(famMemRSS, b, float64(st.memRSS))
	e.emit(famMemCache, b, float64(st.memCache))
	e.emit(famMemSwap, b, float64(st.memSwap))
	if st.hasMaxUsage {
		e.emit(famMemMax, b, float64(st.memMaxUsage))
	}
	if st.hasFailcnt {
		e.emit(famMemFailcnt, b, float64(st.memFailcnt))
	}
	if st.hasOOM {
		e.emit(famOOM, b, float64(st.oomKills))
	}
	if st.hasMemLimit {
		e.emit(famSpecMem, b, st.memLimit)
	}
	if st.hasCPUSpec {
		e.emit(famSpecPeriod, b, float64(st.period))
		e.emit(famSpecShares, b, float64(st.shares))
		if st.quota > 0 {
			e.emit(famSpecQuota, b, float64(st.quota))
		}
	}
	for i := range st.io {
		io := &st.io[i]
		switch io.op {
		case "Read":
			e.emit(famFsReads, ls.device(io.dev), float64(io.value))
		case "Write":
			e.emit(famFsWrites, ls.device(io.dev), float64(io.value))
		}
		e.emit(famBlkio, ls.op(io.dev, io.op), float64(io.value))
	}
	for i := range st.net {
		n := &st.net[i]
		l := ls.iface(n.name)
		e.emit(famNetRxBytes, l, float64(n.rxBytes))
		e.emit(famNetRxPkts, l, float64(n.rxPackets))
		e.emit(famNetRxDrop, l, float64(n.rxDropped))
		e.emit(famNetRxErrs, l, float64(n.rxErrors))
		e.emit(famNetTxBytes, l, float64(n.txBytes))
		e.emit(famNetTxPkts, l, float64(n.txPackets))
		e.emit(famNetTxDrop, l, float64(n.txDropped))
		e.emit(famNetTxErrs, l, float64(n.txErrors))
	}
}
