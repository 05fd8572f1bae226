/* bureau: the command-line client of bureaud. See `bureau --help`. */
#include <stdio.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	const struct cli_command *cmd;
	struct err err = ERR_INIT;
	struct cli_args a;

	if (cli_args_parse(argc - 1, argv + 1, &a, &cmd, &err)) {
		fprintf(stderr, "bureau: %s\n", err.msg);
		fputs("Run `bureau --help` for usage.\n", stderr);
		return CLI_EXIT_USAGE;
	}
	if (a.help) {
		cli_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (a.version || !cmd) {
		printf("bureau %s\n", BUREAU_VERSION);
		return CLI_EXIT_OK;
	}
	return cli_run(&a, cmd);
}
