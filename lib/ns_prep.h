#ifndef NS_PREP_H
#define NS_PREP_H
/* placeholder: module under construction */
#endif
