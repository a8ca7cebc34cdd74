-- A message id (chosen by the sending device) is unique within its conversation, not across
-- the server: a device that picks an id already used in a conversation it is not in must not
-- learn that the id exists there (it used to get MESSAGE_ID_TAKEN). A retried send still finds
-- its first copy, which is in the same conversation.
ALTER TABLE messages DROP CONSTRAINT messages_id_key;
ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_id_key UNIQUE (conversation_id, id);
