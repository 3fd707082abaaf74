/* Subcommand entry points; each returns the process exit status. */
#ifndef BL_CLI_H
#define BL_CLI_H
int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_load(int argc, char **argv);
int cli_find(int argc, char **argv);
int cli_tune(int argc, char **argv);
int cli_noise(int argc, char **argv);
int cli_sweep(int argc, char **argv);
#endif
