from gpudoc.cli import main

raise SystemExit(main())
