package pg

// Full-text search of the archive (XEP-0431): migration 0009 adds the
// tsvector column archive.fts, filled by a trigger for every message whose
// searchable text is not NULL (never for an encrypted one), with a GIN
// index.

// fulltextFilter is the QueryArchive condition for ArchiveQuery.Fulltext:
// every word of text must occur ('simple' configuration, like the index).
func fulltextFilter(args *params, text string) string {
	return "fts @@ plainto_tsquery('simple', " + args.add(text) + ")"
}
