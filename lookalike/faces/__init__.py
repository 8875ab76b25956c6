"""Face verification: detect -> pick a face -> align -> embed -> distance against a threshold."""
