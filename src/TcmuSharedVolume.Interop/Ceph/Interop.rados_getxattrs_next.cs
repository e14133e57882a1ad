using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>The next xattr: name (NUL-terminated) and value, owned by the iterator; a null
    /// name at the end. 0 or a negative errno.</summary>
    [LibraryImport(Library, EntryPoint = "rados_getxattrs_next")]
    public static partial int rados_getxattrs_next(nint iterator, byte** name, byte** value, nuint* length);
}
