// Command burner is the workload of the containers source's live tests and
// benchmark, built static and run FROM scratch: it burns CPU, holds
// memory, serves and sends TCP traffic and writes to disk, as its flags
// ask, then waits to be stopped.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	cpu := flag.Bool("cpu", false, "keep one core busy")
	memMiB := flag.Int("mem", 0, "allocate and touch this many MiB, and hold them")
	serve := flag.String("serve", "", "accept TCP connections on this address and discard what they send")
	send := flag.String("send", "", "send -sendmib MiB to this TCP address")
	sendMiB := flag.Int("sendmib", 0, "MiB to send")
	sendLoop := flag.Bool("sendloop", false, "send -sendmib MiB again every second, on one connection")
	disk := flag.String("disk", "", "write -diskmib MiB to this file with O_DIRECT, then remove it")
	diskMiB := flag.Int("diskmib", 0, "MiB to write")
	health := flag.Bool("health", false, "exit 0 at once: the image's health check")
	flag.Parse()
	if *health {
		return
	}
	runtime.GOMAXPROCS(2)

	var held []byte
	if *memMiB > 0 {
		held = make([]byte, *memMiB<<20)
		for i := 0; i < len(held); i += 4096 {
			held[i] = 1
		}
		fmt.Printf("mem %d MiB touched\n", *memMiB)
	}
	if *serve != "" {
		ln, err := net.Listen("tcp", *serve)
		if err != nil {
			fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					n, _ := io.Copy(io.Discard, c)
					c.Close()
					fmt.Printf("received %d bytes\n", n)
				}()
			}
		}()
		fmt.Printf("serving %s\n", *serve)
	}
	if *send != "" {
		go func() {
			var c net.Conn
			var err error
			for i := 0; i < 100; i++ {
				if c, err = net.Dial("tcp", *send); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				fatal(err)
			}
			buf := make([]byte, 1<<20)
			for {
				for i := 0; i < *sendMiB; i++ {
					if _, err := c.Write(buf); err != nil {
						fatal(err)
					}
				}
				fmt.Printf("sent %d MiB\n", *sendMiB)
				if !*sendLoop {
					break
				}
				time.Sleep(time.Second)
			}
			c.Close()
		}()
	}
	if *disk != "" {
		if err := writeDirect(*disk, *diskMiB); err != nil {
			fatal(err)
		}
		fmt.Printf("wrote %d MiB\n", *diskMiB)
	}
	if *cpu {
		go func() {
			x := 0
			for {
				x++
			}
		}()
		fmt.Println("burning one core")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	runtime.KeepAlive(held)
}

// writeDirect writes MiB blocks with O_DIRECT, so the bytes reach the
// device from this process (and its cgroup) rather than from the kernel's
// flusher threads, and cgroup v1's blkio counts them.
func writeDirect(path string, mib int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_DIRECT, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer f.Close()
	raw := make([]byte, 1<<20+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&raw[0]))%4096)
	buf := raw[off : off+1<<20]
	for i := range buf {
		buf[i] = byte(i)
	}
	for i := 0; i < mib; i++ {
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	return f.Sync()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "burner:", err)
	os.Exit(1)
}
