package host

import "testing"

// Golden tests of the collectors without a test file of their own.

func TestGoldenCPU(t *testing.T) {
	checkGolden(t, "cpu",
		"node_cpu_seconds_total", "node_cpu_guest_seconds_total", "node_cpu_info",
		"node_cpu_frequency_hertz", "node_cpu_flag_info", "node_cpu_bug_info",
		"node_cpu_isolated", "node_cpu_core_throttles_total", "node_cpu_package_throttles_total")
}

func TestGoldenStat(t *testing.T) {
	checkGolden(t, "stat", "node_boot_time_seconds", "node_context_switches_total", "node_forks_total",
		"node_intr_total", "node_procs_blocked", "node_procs_running", "node_softirqs_total")
}

func TestGoldenLoadavg(t *testing.T) {
	checkGolden(t, "loadavg", "node_load1", "node_load5", "node_load15")
}

// meminfo_numa's families share the prefix.
func TestGoldenMeminfo(t *testing.T) {
	checkGolden(t, "meminfo", "node_memory_*", "!node_memory_numa_*")
}

func TestGoldenVmstat(t *testing.T) {
	checkGolden(t, "vmstat", "node_vmstat_oom_kill", "node_vmstat_pgfault", "node_vmstat_pgmajfault",
		"node_vmstat_pgpgin", "node_vmstat_pgpgout", "node_vmstat_pswpin", "node_vmstat_pswpout")
}

func TestGoldenProcSys(t *testing.T) {
	for _, tc := range []struct {
		collector string
		families  []string
	}{
		{"pressure", []string{"node_pressure_*"}},
		{"conntrack", []string{"node_nf_conntrack_*"}},
		{"filefd", []string{"node_filefd_*"}},
		{"entropy", []string{"node_entropy_*"}},
		{"schedstat", []string{"node_schedstat_*"}},
		{"mdadm", []string{"node_md_*"}},
		{"bonding", []string{"node_bonding_*"}},
		{"thermal_zone", []string{"node_thermal_zone_*", "node_cooling_device_*"}},
	} {
		t.Run(tc.collector, func(t *testing.T) {
			checkGolden(t, tc.collector, tc.families...)
		})
	}
}
