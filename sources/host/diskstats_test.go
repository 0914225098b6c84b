package host

import (
	"strings"
	"testing"
)

func TestDiskstatsGolden(t *testing.T) {
	checkGolden(t, "diskstats", "node_disk_*")
}

func TestParseDiskstatsUdev(t *testing.T) {
	in := "S:disk/by-id/x\nE:ID_MODEL=M\nE:ID_SERIAL=S=1\nE:ID_ATA=1\nE:ID_ATA_ROTATION_RATE_RPM=7200\nE:bad\nI:1\nE:ID_WWN=w"
	u := parseDiskstatsUdev([]byte(in))
	if u.model != "M" || u.serial != "S=1" || u.ata != "1" || !u.hasRotationRate || u.ataRotationRate != "7200" || u.wwn != "w" {
		t.Errorf("parsed %+v", u)
	}
	if u.hasWriteCache {
		t.Error("absent ID_ATA_WRITE_CACHE reported present")
	}
}

func FuzzParseDiskstatsUdev(f *testing.F) {
	f.Add([]byte("E:DM_NAME=x\nE:ID_FS_TYPE=ext4\nS:foo\n"))
	f.Add([]byte("E:=\nE:ID_PATH\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u := parseDiskstatsUdev(data)
		if u.hasRotationRate && !strings.Contains(string(data), "E:ID_ATA_ROTATION_RATE_RPM=") {
			t.Fatalf("rotation rate from %q", data)
		}
		if u.dmName != "" && !strings.Contains(string(data), "E:DM_NAME="+u.dmName) {
			t.Fatalf("DM_NAME %q from %q", u.dmName, data)
		}
	})
}

func TestDiskstatsIncludeReplacesDefaultExclude(t *testing.T) {
	c := fixtureCollector(t, "diskstats", map[string]string{"device-include": "^sda[0-9]$"})
	got := strings.Join(seriesLines(collect(t, c)["node_disk_io_now"]), ",")
	if want := `{device="sda1"} 0,{device="sda2"} 0,{device="sda3"} 0,{device="sda4"} 0`; got != want {
		t.Errorf("io_now %s, want %s", got, want)
	}
}

func TestDiskstatsNoUdev(t *testing.T) {
	p := fixturePaths(t)
	p.UdevData = t.TempDir() + "/missing"
	mfs := collect(t, newCollector(t, "diskstats", p, nil))
	for _, n := range []string{"node_disk_filesystem_info", "node_disk_device_mapper_info", "node_disk_ata_write_cache"} {
		if _, ok := mfs[n]; ok {
			t.Errorf("%s reported without udev data", n)
		}
	}
	if _, ok := mfs["node_disk_info"]; !ok {
		t.Error("no node_disk_info")
	}
}

func BenchmarkDiskstats(b *testing.B) {
	benchUpdate(b, fixtureCollector(b, "diskstats", nil))
}
