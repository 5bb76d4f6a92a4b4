#ifndef NS_CSV_H
#define NS_CSV_H
/* placeholder: module under construction */
#endif
