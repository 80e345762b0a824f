package muc

import "encoding/xml"

type xmlAttr = xml.Attr
