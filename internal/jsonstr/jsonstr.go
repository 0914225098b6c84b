// Package jsonstr scans and decodes JSON strings without reflection, for
// the parsers on vigil's hot paths: the json processor and the docker
// source's json-file reader.
package jsonstr

import (
	"bytes"
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// plain marks the bytes a string may hold unescaped.
var plain = func() (t [256]bool) {
	for i := range t {
		t[i] = i >= 0x20 && i != '"' && i != '\\'
	}
	return
}()

const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
)

// Scan scans the string starting at data[i] == '"' and returns the index
// after its closing quote, and whether it holds escapes. ok is false when
// the string is invalid (a bad escape, a raw control character) or does
// not end. Bytes of 0x80 and above are not checked: the caller checks
// UTF-8 where it matters.
func Scan(data []byte, i int) (end int, esc, ok bool) {
	i++
	for {
		// Eight bytes at a time while none is a quote, a backslash or a
		// control character.
		for i+8 <= len(data) {
			v := binary.LittleEndian.Uint64(data[i:])
			q := v ^ (swarOnes * '"')
			bs := v ^ (swarOnes * '\\')
			if ((q-swarOnes)&^q|(bs-swarOnes)&^bs|(v-swarOnes*0x20)&^v)&swarHighs != 0 {
				break
			}
			i += 8
		}
		for i < len(data) && plain[data[i]] {
			i++
		}
		if i >= len(data) {
			return 0, false, false
		}
		switch data[i] {
		case '"':
			return i + 1, esc, true
		case '\\':
			esc = true
			if i+1 >= len(data) {
				return 0, false, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || Hex4(data[i+2:i+6]) < 0 {
					return 0, false, false
				}
				i += 6
			default:
				return 0, false, false
			}
		default:
			// A control character, which JSON requires escaped.
			return 0, false, false
		}
	}
}

// Hex4 decodes the four hex digits of a \u escape, or returns -1.
func Hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// Unescape appends the decoded contents of a JSON string Scan accepted
// (without its quotes) to dst. Invalid surrogates become U+FFFD, as
// encoding/json decodes them.
func Unescape(dst, raw []byte) []byte {
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		raw = raw[i:]
		if len(raw) < 2 {
			return dst
		}
		switch raw[1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if len(raw) < 6 {
				return dst
			}
			r := Hex4(raw[2:6])
			raw = raw[6:]
			if utf16.IsSurrogate(r) {
				if len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
					if r2 := utf16.DecodeRune(r, Hex4(raw[2:6])); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						raw = raw[6:]
						continue
					}
				}
				r = utf8.RuneError
			}
			if r < 0 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, raw[1])
		}
		raw = raw[2:]
	}
	return dst
}
