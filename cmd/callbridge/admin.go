package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"callbridge/internal/auth"
	"callbridge/internal/store"
)

func tenants(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("tenants", stderr, &cf)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("tenants: want add, list or remove\n%s", usage)
	}
	st, err := cf.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch verb := pos[0]; verb {
	case "add", "remove":
		if len(pos) != 2 {
			return fmt.Errorf("tenants %s: want one tenant name", verb)
		}
		if verb == "add" {
			err = st.AddTenant(ctx, pos[1])
		} else {
			err = st.RemoveTenant(ctx, pos[1])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s: %s\n", pos[1], map[string]string{"add": "added", "remove": "removed"}[verb])
		return nil
	case "list":
		ts, err := st.Tenants(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tCREATED")
		for _, t := range ts {
			created := "-"
			if !t.CreatedAt.IsZero() {
				created = t.CreatedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\n", t.Name, created)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("tenants: unknown verb %q (add, list, remove)", verb)
	}
}

func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("keys", stderr, &cf)
	scope := fs.String("scope", "integration", "admin, integration or user")
	user := fs.String("user", "", "CRM user a user-scope key is bound to")
	tenant := fs.String("tenant", store.DefaultTenant, "tenant the key belongs to")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("keys: want add, list, remove or replace\n%s", usage)
	}
	st, err := cf.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	m := &auth.Manager{Store: st}
	verb := pos[0]
	if verb == "list" {
		ins, err := m.List(ctx, *tenant)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tSCOPE\tUSER\tKEY\tCREATED\tROTATED")
		for _, in := range ins {
			rotated := "-"
			if !in.RotatedAt.IsZero() {
				rotated = in.RotatedAt.Format(time.RFC3339)
			}
			u := in.CRMUser
			if u == "" {
				u = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s…\t%s\t%s\n", in.ClientID, in.Scope, u, in.KeyPrefix, in.CreatedAt.Format(time.RFC3339), rotated)
		}
		return tw.Flush()
	}
	if len(pos) != 2 {
		return fmt.Errorf("keys %s: want one client id", verb)
	}
	client := pos[1]
	var key string
	switch verb {
	case "add":
		key, err = m.Add(ctx, *tenant, client, store.Scope(*scope), *user)
	case "replace":
		key, err = m.Replace(ctx, *tenant, client)
	case "remove":
		if err := m.Remove(ctx, *tenant, client); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key of %s removed\n", client)
		return nil
	default:
		return fmt.Errorf("keys: unknown verb %q (add, list, remove, replace)", verb)
	}
	if err != nil {
		return err
	}
	// The key exists only here: the store keeps its hash.
	fmt.Fprintf(stdout, "%s\n", key)
	fmt.Fprintf(stderr, "key for %s (shown once; only its hash is stored)\n", client)
	return nil
}
