#ifndef NS_SYNTH_H
#define NS_SYNTH_H
/* placeholder: module under construction */
#endif
