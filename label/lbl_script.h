/* Keystroke scripts for driving nsentry-label headless (the tig approach).
 * One item per token; lines starting with '#' are comments.
 *   jjj<Enter>        keys: plain characters, and <Enter> <Esc> <Tab> <Space>
 *                     <Up> <Down> <Left> <Right> <PgUp> <PgDn> <Home> <End> <BS> <lt>
 *   :dump NAME        write the screen to DUMP_DIR/NAME.screen
 *   :resize COLSxROWS resize the virtual terminal */
#ifndef LBL_SCRIPT_H
#define LBL_SCRIPT_H
#include <stdbool.h>
#include "ns_status.h"

typedef struct lbl_script lbl_script;
typedef enum { LBL_SCRIPT_KEY, LBL_SCRIPT_DUMP, LBL_SCRIPT_RESIZE } lbl_script_kind;
typedef struct lbl_script_item {
  lbl_script_kind kind;
  int key;
  char arg[256];
  int cols, rows;
} lbl_script_item;

ns_status lbl_script_open(const char *path, lbl_script **out);
/* Parse from a string (tests). */
ns_status lbl_script_from_string(const char *text, lbl_script **out);
void lbl_script_close(lbl_script *s);
bool lbl_script_next(lbl_script *s, lbl_script_item *it);
/* Write the current curses screen as UTF-8 text, trailing blanks trimmed;
 * returns 0 or -1 with errno. */
int lbl_script_dump_screen(const char *path);
#endif
