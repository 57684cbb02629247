DROP TABLE change_sequences;
DROP TABLE changes;
