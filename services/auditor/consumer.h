/* The consumer thread: reads the lineage topic and writes its records in batches. */
#ifndef AUD_CONSUMER_H
#define AUD_CONSUMER_H

/* Joins the group and writes batches until stop. arg is the aud_state_t *, borrowed. */
void *aud_consumer_main(void *arg);

#endif
