// Package reqbody keeps slow request bodies from holding the server: a
// body must keep arriving, at least MinProgress bytes (or its end) within
// each period of the configured timeout, or reading it fails and the
// connection is closed. A large upload may take any time in all as long
// as it keeps coming; a client sending a byte now and then is cut off.
package reqbody
