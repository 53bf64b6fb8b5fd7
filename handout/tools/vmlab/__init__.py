"""vmlab: the lab's command-line tool and property-based grader."""
