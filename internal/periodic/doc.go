// Package periodic runs a server's background chores on a ticker until
// their context ends: the WAL checkpointer, the failed-login budget sweep,
// the TUF metadata renewal.
package periodic
