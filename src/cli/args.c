/* The command line: one table of flags, one table of commands, and the
 * parser and help text both derive from them. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct cli_option {
	const char *name;
	unsigned bit;
	int has_value;
	size_t offset; /* of the const char * or int in struct cli_args */
	const char *value_name;
	const char *help;
};

#define STR(f) offsetof(struct cli_args, f)

static const struct cli_option options[] = {
    {"endpoint", OPT_ENDPOINT, 1, STR(endpoint), "URL",
     "API endpoint (default " CLI_DEFAULT_ENDPOINT ")"},
    {"key", OPT_KEY, 1, STR(key), "KEY", "API key (prefer BUREAU_API_KEY or the config file)"},
    {"config", OPT_CONFIG, 1, STR(config), "FILE", "config file to read"},
    {"json", OPT_JSON, 0, STR(json), NULL, "print the API's JSON instead of tables"},
    {"help", OPT_HELP, 0, STR(help), NULL, "show this help"},
    {"version", OPT_VERSION, 0, STR(version), NULL, "print the version"},
    {"workspace", OPT_WORKSPACE, 1, STR(workspace), "WS", "workspace id or name"},
    {"tier", OPT_TIER, 1, STR(tier), "TIER", "free, pro or max (default free)"},
    {"image", OPT_IMAGE, 1, STR(image), "IMAGE", "desktop (default) or tiny"},
    {"wait", OPT_WAIT, 0, STR(wait), NULL,
     "wait until done: the desktop running/stopped/gone, the snapshot ready/restored/gone"},
    {"timeout", OPT_TIMEOUT, 1, STR(timeout_str), "SECONDS",
     "give up waiting after this long (default 900)"},
    {"from", OPT_FROM, 1, STR(from), "DATE", "start date, YYYY-MM-DD (default: this month)"},
    {"to", OPT_TO, 1, STR(to), "DATE", "end date, YYYY-MM-DD"},
    {"email", OPT_EMAIL, 1, STR(email), "EMAIL", "account email"},
    {"password", OPT_PASSWORD, 1, STR(password), "PASSWORD",
     "account password (prompted when absent)"},
    {"show-key", OPT_SHOW_KEY, 0, STR(show_key), NULL, "print the new API key once"},
    {"root", OPT_ROOT, 0, STR(root), NULL, "exec, cp: as root instead of the agent user"},
    {"cwd", OPT_CWD, 1, STR(cwd), "DIR", "exec: working directory (default: home)"},
    {"stdin", OPT_STDIN, 0, STR(stdin_send), NULL, "exec: send this program's stdin (32 KiB)"},
    {"since", OPT_SINCE, 1, STR(since), "TIME", "metrics: only samples after TIME (ISO or ms)"},
    {"user", OPT_USER, 1, STR(user), "USER", "services add: agent (default) or root"},
    {"state", OPT_STATE, 1, STR(state), "STATE", "alerts: open (default), acknowledged or all"},
    {"note", OPT_NOTE, 1, STR(note), "TEXT", "approvals approve/deny: a note kept with the decision"},
    {"name", OPT_NAME, 1, STR(name), "NAME",
     "snapshots create: the snapshot's name (default snap-YYYYMMDD-HHMMSS, UTC)"},
    {"from-snapshot", OPT_FROM_SNAPSHOT, 1, STR(from_snapshot), "SNAPSHOT",
     "desktops create: a fork, a copy of this snapshot (snp_... or, with --from-desktop, a name)"},
    {"from-desktop", OPT_FROM_DESKTOP, 1, STR(from_desktop), "ID",
     "desktops create: the desktop the --from-snapshot snapshot was taken of"},
    {NULL, 0, 0, 0, NULL, NULL},
};

/* Flags that mean nothing without another: {flag, the one it needs}. */
static const unsigned option_needs[][2] = {
    {OPT_FROM_DESKTOP, OPT_FROM_SNAPSHOT},
    {0, 0},
};

#define WAIT_OPTS (OPT_WAIT | OPT_TIMEOUT)

const struct cli_command cli_commands[] = {
    {"desktops", "ls", "", 0, 0, OPT_WORKSPACE, cmd_desktops_ls, "list desktops"},
    {"desktops", "create", "NAME", 1, 1,
     OPT_WORKSPACE | OPT_TIER | OPT_IMAGE | WAIT_OPTS | OPT_FROM_SNAPSHOT | OPT_FROM_DESKTOP,
     cmd_desktops_create, "create a desktop, or a fork of a snapshot (--wait: until it runs)"},
    {"desktops", "get", "ID", 1, 1, OPT_WORKSPACE, cmd_desktops_get, "show one desktop"},
    {"desktops", "start", "ID...", 1, CLI_BULK_MAX, OPT_WORKSPACE | WAIT_OPTS,
     cmd_desktops_start, "start stopped desktops"},
    {"desktops", "stop", "ID...", 1, CLI_BULK_MAX, OPT_WORKSPACE | WAIT_OPTS, cmd_desktops_stop,
     "stop desktops (their disks are kept)"},
    {"desktops", "restart", "ID...", 1, CLI_BULK_MAX, OPT_WORKSPACE | WAIT_OPTS,
     cmd_desktops_restart, "restart desktops"},
    {"desktops", "rm", "ID...", 1, CLI_BULK_MAX, OPT_WORKSPACE | WAIT_OPTS, cmd_desktops_rm,
     "destroy desktops and their disks"},
    {"snapshots", "ls", "ID", 1, 1, OPT_WORKSPACE, cmd_snapshots_ls, "list a desktop's snapshots"},
    {"snapshots", "create", "ID", 1, 1, OPT_WORKSPACE | OPT_NAME | WAIT_OPTS, cmd_snapshots_create,
     "snapshot a running or stopped desktop (--wait: until it is ready)"},
    {"snapshots", "restore", "ID SNAPSHOT", 2, 2, OPT_WORKSPACE | WAIT_OPTS, cmd_snapshots_restore,
     "roll a desktop back to a snapshot (--wait: until the desktop is back)"},
    {"snapshots", "rm", "ID SNAPSHOT", 2, 2, OPT_WORKSPACE | WAIT_OPTS, cmd_snapshots_rm,
     "delete a snapshot (--wait: until it is gone)"},
    {"keys", "ls", "", 0, 0, 0, cmd_keys_ls, "list API keys"},
    {"keys", "create", "NAME", 1, 1, 0, cmd_keys_create, "create an API key (printed once)"},
    {"keys", "rm", "ID", 1, 1, 0, cmd_keys_rm, "revoke an API key"},
    {"workspaces", "ls", "", 0, 0, 0, cmd_workspaces_ls, "list workspaces"},
    {"workspaces", "create", "NAME", 1, 1, 0, cmd_workspaces_create, "create a workspace"},
    {"workspaces", "members", "WS", 1, 1, 0, cmd_workspaces_members, "list a workspace's members"},
    {"events", NULL, "", 0, 0, OPT_WORKSPACE, cmd_events,
     "follow desktop events (reconnects on a dropped connection)"},
    {"usage", NULL, "", 0, 0, OPT_WORKSPACE | OPT_FROM | OPT_TO, cmd_usage,
     "desktop hours and cost of a workspace"},
    {"login", NULL, "", 0, 0, OPT_EMAIL | OPT_PASSWORD | OPT_SHOW_KEY, cmd_login,
     "log in, create an API key for this host, save the config"},
    {"screenshot", NULL, "ID FILE", 2, 2, OPT_WORKSPACE, cmd_screenshot,
     "save a running desktop's screen as PNG (FILE - for stdout)"},
    {"health", NULL, "", 0, 0, 0, cmd_health, "show the server's version and acceleration"},
    {"exec", NULL, "ID -- CMD...", 2, CLI_MAX_POSITIONAL, OPT_WORKSPACE | OPT_ROOT | OPT_CWD |
     OPT_TIMEOUT | OPT_STDIN, cmd_exec,
     "run a command in a desktop, output as it comes; exits with its exit code"},
    {"cp", NULL, "SRC DST", 2, 2, OPT_WORKSPACE | OPT_ROOT, cmd_cp,
     "copy a file: LOCAL ID:/PATH uploads, ID:/PATH LOCAL downloads (- is stdin/stdout)"},
    {"metrics", NULL, "ID", 1, 1, OPT_WORKSPACE | OPT_SINCE, cmd_metrics,
     "a desktop's recent metrics (CPU, memory, disk, load, QEMU)"},
    {"services", "ls", "ID", 1, 1, OPT_WORKSPACE, cmd_services_ls,
     "a desktop's persistent services and their status"},
    {"services", "add", "ID NAME -- CMD...", 3, CLI_MAX_POSITIONAL, OPT_WORKSPACE | OPT_USER,
     cmd_services_add, "add a command started after every boot of the desktop"},
    {"services", "rm", "ID NAME", 2, 2, OPT_WORKSPACE, cmd_services_rm,
     "remove a persistent service (a running one is stopped)"},
    {"alerts", "ls", "", 0, 0, OPT_WORKSPACE | OPT_STATE, cmd_alerts_ls,
     "list alerts (--state open, acknowledged or all)"},
    {"alerts", "ack", "ALERT", 1, 1, 0, cmd_alerts_ack, "acknowledge an alert"},
    {"chat", NULL, "ID MESSAGE", 2, 2, OPT_WORKSPACE, cmd_chat,
     "send the desktop's agent a message and print its reply as it streams"},
    {"approvals", "ls", "", 0, 0, 0, cmd_approvals_ls, "list the agents' approvals"},
    {"approvals", "approve", "APPROVAL", 1, 1, OPT_NOTE, cmd_approvals_approve,
     "let a paused agent go on"},
    {"approvals", "deny", "APPROVAL", 1, 1, OPT_NOTE, cmd_approvals_deny,
     "refuse a paused agent's action"},
    {"egress", "ls", "WS", 1, 1, 0, cmd_egress_ls, "a workspace's egress allowlist"},
    {"egress", "allow", "WS PATTERN", 2, 2, 0, cmd_egress_allow,
     "add a host pattern to a workspace's allowlist"},
    {"egress", "deny", "WS PATTERN", 2, 2, 0, cmd_egress_deny,
     "remove a host pattern from a workspace's allowlist"},
    {"egress", "log", "ID", 1, 1, OPT_WORKSPACE, cmd_egress_log,
     "a desktop's outgoing connections, allowed and refused"},
    {NULL, NULL, NULL, 0, 0, 0, NULL, NULL},
};

static const struct cli_option *option_find(const char *name, size_t len)
{
	for (const struct cli_option *o = options; o->name; o++)
		if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static const char *option_name(unsigned bit)
{
	for (const struct cli_option *o = options; o->name; o++)
		if (o->bit == bit)
			return o->name;
	return "?";
}

/* Reads one "--name", "--name=value" or "--name value" at argv[*i]. */
static int parse_option(int argc, char **argv, int *i, struct cli_args *a, struct err *err)
{
	const char *arg = argv[*i] + 2, *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const struct cli_option *o = option_find(arg, len);
	const char *value = NULL;

	if (!o)
		return err_set(err, 2, "usage", "unknown flag --%.*s", (int)len, arg);
	if (o->has_value) {
		if (eq)
			value = eq + 1;
		else if (*i + 1 < argc)
			value = argv[++*i];
		else
			return err_set(err, 2, "usage", "flag --%s needs a value", o->name);
		*(const char **)((char *)a + o->offset) = value;
	} else {
		if (eq)
			return err_set(err, 2, "usage", "flag --%s takes no value", o->name);
		*(int *)((char *)a + o->offset) = 1;
	}
	a->seen |= o->bit;
	return 0;
}

static const struct cli_command *command_find(const char *group, const char *verb)
{
	for (const struct cli_command *c = cli_commands; c->group; c++) {
		if (strcmp(c->group, group) != 0)
			continue;
		if (!c->verb || (verb && strcmp(c->verb, verb) == 0))
			return c;
	}
	return NULL;
}

static int group_exists(const char *group)
{
	for (const struct cli_command *c = cli_commands; c->group; c++)
		if (strcmp(c->group, group) == 0)
			return 1;
	return 0;
}

static int parse_timeout(struct cli_args *a, struct err *err)
{
	char *end;
	long v;

	a->timeout_s = CLI_DEFAULT_WAIT_S;
	if (!a->timeout_str)
		return 0;
	v = strtol(a->timeout_str, &end, 10);
	if (end == a->timeout_str || *end || v <= 0 || v > 86400)
		return err_set(err, 2, "usage", "--timeout wants seconds (1..86400), not \"%s\"",
			       a->timeout_str);
	a->timeout_s = (int)v;
	return 0;
}

/* Checks the words and flags against the chosen command. */
static int bind_command(struct cli_args *a, const struct cli_command **cmd, struct err *err)
{
	const struct cli_command *c;
	int skip, nargs;
	unsigned extra;

	*cmd = NULL;
	if (a->npos == 0) {
		if (a->help || a->version)
			return 0;
		return err_set(err, 2, "usage", "no command given (try bureau --help)");
	}
	if (!group_exists(a->pos[0]))
		return err_set(err, 2, "usage", "unknown command \"%s\"", a->pos[0]);
	c = command_find(a->pos[0], a->npos > 1 ? a->pos[1] : NULL);
	if (!c) {
		if (a->help)
			return 0; /* "bureau desktops --help" */
		if (a->npos < 2)
			return err_set(err, 2, "usage", "%s needs a subcommand", a->pos[0]);
		return err_set(err, 2, "usage", "unknown command \"%s %s\"", a->pos[0], a->pos[1]);
	}
	skip = c->verb ? 2 : 1;
	nargs = a->npos - skip;
	memmove(a->pos, a->pos + skip, (size_t)nargs * sizeof(a->pos[0]));
	a->npos = nargs;
	*cmd = c;
	if (a->help)
		return 0;
	extra = a->seen & ~(OPT_GLOBAL | OPT_VERSION | c->opts);
	if (extra)
		return err_set(err, 2, "usage", "flag --%s does not apply to %s%s%s",
			       option_name(extra & -extra), c->group, c->verb ? " " : "",
			       c->verb ? c->verb : "");
	for (int i = 0; option_needs[i][0]; i++)
		if ((a->seen & option_needs[i][0]) && !(a->seen & option_needs[i][1]))
			return err_set(err, 2, "usage", "flag --%s needs --%s",
				       option_name(option_needs[i][0]),
				       option_name(option_needs[i][1]));
	if (nargs < c->min_args)
		return err_set(err, 2, "usage", "missing argument: bureau %s%s%s %s", c->group,
			       c->verb ? " " : "", c->verb ? c->verb : "", c->args);
	if (nargs > c->max_args)
		return err_set(err, 2, "usage", "unexpected argument \"%s\"", a->pos[c->max_args]);
	for (int i = 0; i < nargs; i++)
		if (a->pos[i][0] == '\0')
			return err_set(err, 2, "usage", "empty argument");
	return 0;
}

int cli_args_parse(int argc, char **argv, struct cli_args *a, const struct cli_command **cmd,
		   struct err *err)
{
	int dashdash = 0;

	memset(a, 0, sizeof(*a));
	a->timeout_s = CLI_DEFAULT_WAIT_S;
	*cmd = NULL;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];

		if (!dashdash && strcmp(s, "--") == 0) {
			dashdash = 1;
		} else if (!dashdash && s[0] == '-' && s[1] == '-') {
			if (parse_option(argc, argv, &i, a, err))
				return -1;
		} else if (!dashdash && strcmp(s, "-h") == 0) {
			a->help = 1;
			a->seen |= OPT_HELP;
		} else if (!dashdash && s[0] == '-' && s[1] != '\0') {
			return err_set(err, 2, "usage", "unknown flag %s", s);
		} else {
			if (a->npos == CLI_MAX_POSITIONAL)
				return err_set(err, 2, "usage", "too many arguments");
			a->pos[a->npos++] = s;
		}
	}
	if (parse_timeout(a, err))
		return -1;
	if (a->npos == 1 && strcmp(a->pos[0], "help") == 0) {
		a->npos = 0;
		a->help = 1;
	}
	return bind_command(a, cmd, err);
}

void cli_usage(FILE *out)
{
	fputs("usage: bureau [flags] COMMAND [ARGS]\n\nCommands:\n", out);
	for (const struct cli_command *c = cli_commands; c->group; c++) {
		char left[64];

		snprintf(left, sizeof(left), "%s%s%s%s%s", c->group, c->verb ? " " : "",
			 c->verb ? c->verb : "", c->args[0] ? " " : "", c->args);
		fprintf(out, "  %-30s %s\n", left, c->help);
	}
	fputs("\nFlags (where they apply):\n", out);
	for (const struct cli_option *o = options; o->name; o++) {
		char left[64];

		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->value_name ? " " : "",
			 o->value_name ? o->value_name : "");
		fprintf(out, "  %-30s %s\n", left, o->help);
	}
	fputs("\nID is a desktop id (dsk_...) or name; WS a workspace id (ws_...) or name;\n"
	      "SNAPSHOT a snapshot id (snp_...) or the name of one of the desktop's snapshots.\n"
	      "Endpoint, key and workspace come from the flags, else BUREAU_ENDPOINT,\n"
	      "BUREAU_API_KEY and BUREAU_WORKSPACE, else the config file ($BUREAU_CONFIG or\n"
	      "~/.config/bureau/config) of \"key = value\" lines: endpoint, key, workspace.\n"
	      "\nExit codes:\n"
	      "  0  success\n"
	      "  1  the API answered an error (its message is printed on stderr), or a\n"
	      "     --wait failed (the desktop went to error, or --timeout passed)\n"
	      "  2  usage error: unknown command or flag, missing or extra argument\n"
	      "  3  the endpoint could not be reached\n"
	      "  4  not found: the API answered 404 (unknown id, or another workspace's)\n",
	      out);
}
