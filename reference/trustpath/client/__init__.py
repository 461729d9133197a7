"""Client adapters: the slixmpp plugin (:mod:`trustpath.client.slixmpp`) and the poezio plugin
built on it (:mod:`trustpath.client.poezio`)."""
