// Package httpjson writes the JSON answers of Hallmark's HTTP APIs (the
// provenance, pull policy and retention APIs): one encoding, one set of
// headers, one fallback when a value cannot be encoded.
package httpjson
