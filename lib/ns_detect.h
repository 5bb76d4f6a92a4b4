#ifndef NS_DETECT_H
#define NS_DETECT_H
/* placeholder: module under construction */
#endif
