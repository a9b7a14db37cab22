-- ferry-postgres schema version 4: approved re-drive of dead letters
-- (`DeadLetters::approve_dead_letters` / `redrive_approved`). An approval belongs to
-- one death: the row carrying it leaves the table when it is re-driven, and a new
-- death is a new row, unapproved.
ALTER TABLE dead_letters ADD COLUMN approved BOOLEAN NOT NULL DEFAULT FALSE;
-- Re-drive: the queue's approved dead letters, oldest death first.
CREATE INDEX dead_letters_approved ON dead_letters (qid, seq) WHERE approved;
