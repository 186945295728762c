// Package web serves Hallmark's JSON API for provenance: the signatures of
// an image (who signed it, with which annotations, verified or not) and a
// search for images by signed annotation, e.g. every image built from a
// commit. The HTML UI will live here too.
package web
