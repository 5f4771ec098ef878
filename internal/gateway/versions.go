package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/registry"
)

func (g *Gateway) publish(w http.ResponseWriter, r *http.Request) {
	s, created, err := g.reg.Publish(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, api.PublishResult{Function: api.FunctionFromSpec(s), Created: created})
}

func (g *Gateway) listVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := g.reg.Versions(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := api.VersionList{Versions: []api.Function{}}
	for _, s := range vs {
		out.Versions = append(out.Versions, api.FunctionFromSpec(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) deleteVersion(w http.ResponseWriter, r *http.Request) {
	if err := g.reg.DeleteVersion(r.Context(), r.PathValue("name"), r.PathValue("version")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func aliasToAPI(a *function.Alias) api.Alias {
	return api.Alias{Name: a.Name, Function: a.Function, Version: a.Version, Weights: a.Weights, Description: a.Description, Updated: a.Updated}
}

func (g *Gateway) listAliases(w http.ResponseWriter, r *http.Request) {
	as, err := g.reg.Aliases(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := api.AliasList{Aliases: []api.Alias{}}
	for _, a := range as {
		out.Aliases = append(out.Aliases, aliasToAPI(a))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) putAlias(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		writeError(w, err)
		return
	}
	var in api.Alias
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, function.Invalid("body", "not a valid alias: %v", err))
		return
	}
	name, alias := r.PathValue("name"), r.PathValue("alias")
	if in.Name != "" && in.Name != alias {
		writeError(w, function.Invalid("name", "body names alias %q but the URL names %q", in.Name, alias))
		return
	}
	a, change, err := g.reg.PutAlias(r.Context(), function.Alias{
		Name: alias, Function: name, Version: in.Version, Weights: in.Weights, Description: in.Description,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if change == registry.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, api.PutAliasResult{Alias: aliasToAPI(a), Change: string(change)})
}

func (g *Gateway) deleteAlias(w http.ResponseWriter, r *http.Request) {
	if err := g.reg.DeleteAlias(r.Context(), r.PathValue("name"), r.PathValue("alias")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
