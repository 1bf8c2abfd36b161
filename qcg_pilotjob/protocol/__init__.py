"""What the front and the partitions say to each other (messages) and how it is encoded (codec)."""
