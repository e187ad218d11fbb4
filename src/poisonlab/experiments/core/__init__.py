"""What every study kind shares: its results row, the measuring every study calls, field types, intervals."""
