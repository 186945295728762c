// Package ca is Hallmark's Fulcio-compatible certificate authority: it turns
// a verified OIDC ID token plus a proof of possession of a key into a
// 10-minute code-signing certificate that carries the CI identity (SAN) and
// Fulcio's certificate extensions (pkg/fulcio), with an embedded SCT from a
// built-in CT log key. With Config.Records it records, for each certificate,
// the verified token's claims the certificate cannot carry (the claims it
// saw: pipeline, job, user, runner). It serves Fulcio's legacy v1 and v2
// HTTP APIs. Its root and intermediate rotate in generations (Rotate); older
// generations stay trusted for what they issued before the next took over.
package ca
