/* cf_optim_generic.c — the optimiser updates (cf_optim.inc) in portable C. */
#include "optim/cf_optim.inc"
