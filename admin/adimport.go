package admin

import (
	"context"
	"net/http"
)

// ADImporter runs the Active Directory import (SPEC 6.2-6.4) for the
// admin API. The daemon implements it over package adimport; results are
// rendered as they come (JSON objects the importer defines).
type ADImporter interface {
	// ImportAD runs one cycle of the named [[ad]] domain now. An unknown
	// domain is an error wrapping store.ErrNotFound.
	ImportAD(ctx context.Context, domain string, req ADImportRequest) (any, error)
	// ADStatus reports one domain ("" = every domain with an import).
	ADStatus(domain string) (any, error)
}

// ADImportRequest is the body of POST /v1/ad/{name}/import.
type ADImportRequest struct {
	// DryRun: compute and return the changes, apply none.
	DryRun bool `json:"dry_run"`
	// ConfirmDeletions: apply a cycle the safety stop would hold back.
	ConfirmDeletions bool `json:"confirm_deletions"`
}

func (s *Server) adRoutes() {
	s.handle("POST /v1/ad/{name}/import", s.adImport)
	s.handle("GET /v1/ad/{name}/status", s.adStatus)
	s.handle("GET /v1/ad", s.adStatus)
	s.handle("POST /v1/ad/{name}/pause", s.pauseAD(true))
	s.handle("POST /v1/ad/{name}/resume", s.pauseAD(false))
}

func (s *Server) adImporter() (ADImporter, error) {
	if s.cfg.ADImport == nil {
		return nil, &apiError{http.StatusNotFound, "no [[ad]] block has an import configured"}
	}
	return s.cfg.ADImport, nil
}

// adImport: POST /v1/ad/{name}/import {"dry_run": bool, "confirm_deletions": bool}
func (s *Server) adImport(w http.ResponseWriter, r *http.Request) error {
	imp, err := s.adImporter()
	if err != nil {
		return err
	}
	var req ADImportRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	res, err := imp.ImportAD(r.Context(), r.PathValue("name"), req)
	if err != nil && res == nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// adStatus: GET /v1/ad/{name}/status, GET /v1/ad (every domain)
func (s *Server) adStatus(w http.ResponseWriter, r *http.Request) error {
	imp, err := s.adImporter()
	if err != nil {
		return err
	}
	res, err := imp.ADStatus(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
