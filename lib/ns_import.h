#ifndef NS_IMPORT_H
#define NS_IMPORT_H
/* placeholder: module under construction */
#endif
