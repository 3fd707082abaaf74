#include <stdio.h>
#include "cli.h"
int cli_eval(int argc, char **argv) { fprintf(stderr, "not built yet\n"); return 2; }
int cli_predict(int argc, char **argv) { fprintf(stderr, "not built yet\n"); return 2; }
int cli_info(int argc, char **argv) { fprintf(stderr, "not built yet\n"); return 2; }
